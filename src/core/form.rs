//! Forms: the restricted JSON Schema of MCP elicitation that a clarify may
//! carry (docs/PROTOCOL.md §5.1), checked when it is submitted, and every
//! answer checked against it.
//!
//! A schema is a flat object whose properties are strings (lengths, a
//! format, or a list of values), numbers or integers (bounds), booleans, or
//! arrays of listed strings (a multi-select); with `required` and defaults.
//! Anything else is refused at submit with a 400 naming where it is. An
//! answer is an object checked against it whatever the page did: a 400
//! names the field, and a refused answer changes nothing.

use crate::error::{Error, Result};
use serde_json::{Map, Value};

const MAX_SCHEMA_BYTES: usize = 16 * 1024;
const MAX_PROPERTIES: usize = 32;
const MAX_NAME_CHARS: usize = 64;
const MAX_OPTIONS: usize = 64;
/// The longest string an answer may hold when the schema does not say.
const MAX_STRING_CHARS: usize = 4096;

const FORMATS: [&str; 4] = ["email", "uri", "date", "date-time"];

fn bad(message: String) -> Error {
    Error::bad_request(message)
}

/// Checks a submitted `schema`; the 400 names the place, as
/// `schema.properties.age.minimum`.
pub fn check_schema(schema: &Value) -> Result<()> {
    let Value::Object(top) = schema else {
        return Err(bad("schema must be an object".into()));
    };
    if schema.to_string().len() > MAX_SCHEMA_BYTES {
        return Err(bad(format!(
            "schema is longer than {MAX_SCHEMA_BYTES} bytes"
        )));
    }
    only_keys(
        top,
        "schema",
        &[
            "type",
            "properties",
            "required",
            "title",
            "description",
            "$schema",
        ],
    )?;
    if top.get("type").and_then(Value::as_str) != Some("object") {
        return Err(bad("schema.type must be \"object\"".into()));
    }
    let properties = match top.get("properties") {
        Some(Value::Object(p)) if !p.is_empty() && p.len() <= MAX_PROPERTIES => p,
        _ => {
            return Err(bad(format!(
                "schema.properties must be an object of 1 to {MAX_PROPERTIES} properties"
            )));
        }
    };
    for (name, property) in properties {
        check_name(name)?;
        check_property(&format!("schema.properties.{name}"), property)?;
    }
    let required = match top.get("required") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(required)) => required,
        Some(_) => {
            return Err(bad(
                "schema.required must be a list of property names".into()
            ));
        }
    };
    for name in required {
        match name.as_str() {
            Some(name) if properties.contains_key(name) => {}
            _ => {
                return Err(bad(format!(
                    "schema.required names {name}, which is not a property"
                )));
            }
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
    match !name.is_empty() && name.chars().count() <= MAX_NAME_CHARS && name.chars().all(allowed) {
        true => Ok(()),
        false => Err(bad(format!(
            "schema.properties: a property name is 1 to {MAX_NAME_CHARS} characters from A-Z a-z 0-9 _ . -"
        ))),
    }
}

fn only_keys(object: &Map<String, Value>, at: &str, allowed: &[&str]) -> Result<()> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(bad(format!("{at}.{key} is not supported"))),
        None => Ok(()),
    }
}

fn check_property(at: &str, property: &Value) -> Result<()> {
    let Value::Object(p) = property else {
        return Err(bad(format!("{at} must be an object")));
    };
    for key in ["title", "description"] {
        if p.get(key).is_some_and(|v| !v.is_string()) {
            return Err(bad(format!("{at}.{key} must be a string")));
        }
    }
    let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
    let common = ["type", "title", "description", "default"];
    let with = |more: &[&'static str]| [&common[..], more].concat();
    match kind {
        "string" => {
            only_keys(
                p,
                at,
                &with(&[
                    "minLength",
                    "maxLength",
                    "format",
                    "enum",
                    "enumNames",
                    "oneOf",
                ]),
            )?;
            check_string_property(at, p)
        }
        "number" | "integer" => {
            only_keys(p, at, &with(&["minimum", "maximum"]))?;
            check_number_property(at, p)
        }
        "boolean" => {
            only_keys(p, at, &common)?;
            check_default(at, p)
        }
        "array" => {
            only_keys(p, at, &with(&["items", "minItems", "maxItems"]))?;
            check_array_property(at, p)
        }
        _ => Err(bad(format!(
            "{at}.type must be string, number, integer, boolean or array"
        ))),
    }
}

fn check_string_property(at: &str, p: &Map<String, Value>) -> Result<()> {
    let min = count(p, at, "minLength")?;
    let max = count(p, at, "maxLength")?;
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(bad(format!("{at}.minLength is more than its maxLength")));
    }
    if let Some(format) = p.get("format")
        && !format.as_str().is_some_and(|f| FORMATS.contains(&f))
    {
        return Err(bad(format!(
            "{at}.format must be one of {}",
            FORMATS.join(", ")
        )));
    }
    let options = string_options(at, p)?;
    if let Some(names) = p.get("enumNames") {
        let names = names.as_array().filter(|n| n.iter().all(Value::is_string));
        if p.get("enum").is_none() || names.map(Vec::len) != options.as_ref().map(Vec::len) {
            return Err(bad(format!(
                "{at}.enumNames must be as many strings as its enum"
            )));
        }
    }
    check_default(at, p)
}

/// The values a string (or an array's items) may take: from `enum`, or the
/// `const` of each `oneOf`/`anyOf` entry; `None` when any string will do.
fn string_options(at: &str, p: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    let invalid = |key: &str, what: &str| {
        bad(format!(
            "{at}.{key} must be a list of 1 to {MAX_OPTIONS} {what}"
        ))
    };
    if let Some(values) = p.get("enum") {
        let list = values
            .as_array()
            .filter(|l| (1..=MAX_OPTIONS).contains(&l.len()));
        let list = list.ok_or_else(|| invalid("enum", "strings"))?;
        let strings: Option<Vec<String>> =
            list.iter().map(|v| v.as_str().map(String::from)).collect();
        return strings.map(Some).ok_or_else(|| invalid("enum", "strings"));
    }
    for key in ["oneOf", "anyOf"] {
        let Some(values) = p.get(key) else { continue };
        let list = values
            .as_array()
            .filter(|l| (1..=MAX_OPTIONS).contains(&l.len()));
        let list = list.ok_or_else(|| invalid(key, "{const, title} objects"))?;
        let option = |v: &Value| {
            let o = v.as_object()?;
            let keys_ok = o.keys().all(|k| k == "const" || k == "title");
            let title_ok = o.get("title").is_none_or(Value::is_string);
            (keys_ok && title_ok).then(|| o.get("const")?.as_str().map(String::from))?
        };
        let strings: Option<Vec<String>> = list.iter().map(option).collect();
        return strings
            .map(Some)
            .ok_or_else(|| invalid(key, "{const, title} objects"));
    }
    Ok(None)
}

fn check_number_property(at: &str, p: &Map<String, Value>) -> Result<()> {
    for key in ["minimum", "maximum"] {
        if p.get(key).is_some_and(|v| !v.is_number()) {
            return Err(bad(format!("{at}.{key} must be a number")));
        }
    }
    let bound = |key| p.get(key).and_then(Value::as_f64);
    if let (Some(min), Some(max)) = (bound("minimum"), bound("maximum"))
        && min > max
    {
        return Err(bad(format!("{at}.minimum is more than its maximum")));
    }
    check_default(at, p)
}

fn check_array_property(at: &str, p: &Map<String, Value>) -> Result<()> {
    let items = match p.get("items") {
        Some(Value::Object(items)) => items,
        _ => return Err(bad(format!("{at}.items must be an object"))),
    };
    let items_at = format!("{at}.items");
    only_keys(items, &items_at, &["type", "enum", "anyOf", "oneOf"])?;
    if items.get("type").is_some_and(|t| t != "string") {
        return Err(bad(format!("{items_at}.type must be \"string\"")));
    }
    if string_options(&items_at, items)?.is_none() {
        return Err(bad(format!(
            "{items_at} must list its values (enum or anyOf)"
        )));
    }
    let min = count(p, at, "minItems")?;
    let max = count(p, at, "maxItems")?;
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(bad(format!("{at}.minItems is more than its maxItems")));
    }
    check_default(at, p)
}

fn count(p: &Map<String, Value>, at: &str, key: &str) -> Result<Option<u64>> {
    match p.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(format!("{at}.{key} must be a whole number, 0 or more"))),
    }
}

/// A default must itself be a valid answer for its property.
fn check_default(at: &str, p: &Map<String, Value>) -> Result<()> {
    match p.get("default") {
        None => Ok(()),
        Some(value) => check_value(&format!("{at}.default"), p, value),
    }
}

/// Checks an answer against a schema that passed `check_schema`; the 400
/// names the field as `response.age`.
pub fn check_response(schema: &Value, response: &Value) -> Result<()> {
    let Value::Object(answer) = response else {
        return Err(bad("response must be an object of the form's fields".into()));
    };
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(name) = answer.keys().find(|name| !properties.contains_key(*name)) {
        return Err(bad(format!("response.{name} is not a field of the form")));
    }
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    for name in required.iter().filter_map(Value::as_str) {
        if answer.get(name).is_none_or(Value::is_null) {
            return Err(bad(format!("response.{name} is required")));
        }
    }
    for (name, value) in answer {
        let property = properties[name].as_object().cloned().unwrap_or_default();
        if !value.is_null() {
            check_value(&format!("response.{name}"), &property, value)?;
        }
    }
    Ok(())
}

fn check_value(at: &str, p: &Map<String, Value>, value: &Value) -> Result<()> {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "string" => check_string(at, p, value),
        "number" | "integer" => check_number(at, p, value, kind == "integer"),
        "boolean" => match value.is_boolean() {
            true => Ok(()),
            false => Err(bad(format!("{at} must be true or false"))),
        },
        _ => check_array(at, p, value),
    }
}

fn check_string(at: &str, p: &Map<String, Value>, value: &Value) -> Result<()> {
    let Some(text) = value.as_str() else {
        return Err(bad(format!("{at} must be a string")));
    };
    if let Some(options) = string_options(at, p)? {
        return match options.iter().any(|o| o == text) {
            true => Ok(()),
            false => Err(bad(format!("{at} must be one of the listed values"))),
        };
    }
    let chars = text.chars().count() as u64;
    let min = p.get("minLength").and_then(Value::as_u64).unwrap_or(0);
    let max = p.get("maxLength").and_then(Value::as_u64);
    let max = max
        .unwrap_or(MAX_STRING_CHARS as u64)
        .min(MAX_STRING_CHARS as u64);
    if chars < min || chars > max {
        return Err(bad(format!("{at} must be {min} to {max} characters long")));
    }
    match p.get("format").and_then(Value::as_str) {
        Some(format) if !matches_format(format, text) => {
            Err(bad(format!("{at} must be a valid {format}")))
        }
        _ => Ok(()),
    }
}

fn matches_format(format: &str, text: &str) -> bool {
    match format {
        "email" => text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.contains(char::is_whitespace)
                && !domain.contains('@')
        }),
        "uri" => text.split_once(':').is_some_and(|(scheme, rest)| {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
                && !rest.is_empty()
                && !text.contains(char::is_whitespace)
        }),
        "date" => is_date(text),
        "date-time" => is_date_time(text),
        _ => false,
    }
}

/// `YYYY-MM-DD`, a real day.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// RFC 3339: a date, `T`, `HH:MM:SS`, optional fraction, `Z` or `±HH:MM`.
fn is_date_time(text: &str) -> bool {
    let Some((date, time)) = text.split_once(['T', 't']) else {
        return false;
    };
    let hms = |t: &str, max_hour: u32| -> bool {
        let parts: Vec<&str> = t.split(':').collect();
        let ok = |s: &str, max: u32| s.len() == 2 && s.parse::<u32>().is_ok_and(|n| n <= max);
        match parts.as_slice() {
            [h, m] => ok(h, max_hour) && ok(m, 59),
            [h, m, s] => ok(h, max_hour) && ok(m, 59) && ok(s, 60),
            _ => false,
        }
    };
    let (clock, zone) = match time.strip_suffix(['Z', 'z']) {
        Some(clock) => (clock, None),
        None => match time.rfind(['+', '-']) {
            Some(at) => (&time[..at], Some(&time[at + 1..])),
            None => return false,
        },
    };
    let clock = match clock.split_once('.') {
        Some((clock, fraction))
            if !fraction.is_empty() && fraction.bytes().all(|c| c.is_ascii_digit()) =>
        {
            clock
        }
        Some(_) => return false,
        None => clock,
    };
    is_date(date)
        && clock.len() == 8
        && hms(clock, 23)
        && zone.is_none_or(|z| z.len() == 5 && hms(z, 23))
}

fn check_number(at: &str, p: &Map<String, Value>, value: &Value, integer: bool) -> Result<()> {
    let Some(number) = value.as_f64() else {
        return Err(bad(format!("{at} must be a number")));
    };
    if integer && (number.fract() != 0.0 || number.abs() > 9e15) {
        return Err(bad(format!("{at} must be a whole number")));
    }
    let min = p.get("minimum").and_then(Value::as_f64);
    let max = p.get("maximum").and_then(Value::as_f64);
    if min.is_some_and(|min| number < min) || max.is_some_and(|max| number > max) {
        let show = |b: Option<f64>| b.map_or("any".into(), |b| b.to_string());
        return Err(bad(format!(
            "{at} must be between {} and {}",
            show(min),
            show(max)
        )));
    }
    Ok(())
}

fn check_array(at: &str, p: &Map<String, Value>, value: &Value) -> Result<()> {
    let Some(items) = value.as_array() else {
        return Err(bad(format!("{at} must be a list")));
    };
    let item_schema = p
        .get("items")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let options = string_options(at, &item_schema)?.unwrap_or_default();
    let mut seen = Vec::new();
    for item in items {
        match item.as_str() {
            Some(text) if options.iter().any(|o| o == text) && !seen.contains(&text) => {
                seen.push(text)
            }
            _ => {
                return Err(bad(format!(
                    "{at} must list distinct values from its options"
                )));
            }
        }
    }
    let n = items.len() as u64;
    let min = p.get("minItems").and_then(Value::as_u64).unwrap_or(0);
    let max = p
        .get("maxItems")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    if n < min || n > max {
        return Err(bad(format!(
            "{at} must pick {min} to {} values",
            max.min(options.len() as u64)
        )));
    }
    Ok(())
}

/// Checks a multiple-choice answer: distinct choices offered, at least one.
pub fn check_picks(choices: &[String], picks: &[String]) -> Result<()> {
    if picks.is_empty() {
        return Err(bad("response must pick at least one choice".into()));
    }
    for (i, pick) in picks.iter().enumerate() {
        if !choices.contains(pick) || picks[..i].contains(pick) {
            return Err(bad(format!(
                "response[{i}] must be one of the choices offered, once"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "name": {"type": "string", "minLength": 2, "maxLength": 5},
            "mail": {"type": "string", "format": "email"},
            "day": {"type": "string", "format": "date"},
            "when": {"type": "string", "format": "date-time"},
            "site": {"type": "string", "format": "uri"},
            "env": {"type": "string", "enum": ["dev", "prod"], "enumNames": ["Dev", "Prod"]},
            "db": {"type": "string", "oneOf": [{"const": "pg", "title": "Postgres"}]},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "ratio": {"type": "number", "maximum": 1.5},
            "ok": {"type": "boolean", "default": true},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b", "c"]},
                     "minItems": 1, "maxItems": 2}
        }, "required": ["name"]})
    }

    #[test]
    fn answers_are_checked_field_by_field() {
        let schema = schema();
        check_schema(&schema).unwrap();
        let good = json!({"name": "ann", "mail": "a@b.org", "day": "2024-02-29",
            "when": "2024-02-29T10:00:00.5+02:00", "site": "https://x.org", "env": "prod",
            "db": "pg", "age": 30, "ratio": 0.5, "ok": false, "tags": ["a", "c"]});
        assert_eq!(check_response(&schema, &good), Ok(()));
        let cases = [
            (json!({}), "response.name is required"),
            (json!({"name": "a"}), "response.name must be 2 to 5"),
            (json!({"name": "ann", "x": 1}), "response.x is not a field"),
            (
                json!({"name": "ann", "mail": "ab.org"}),
                "response.mail must be a valid email",
            ),
            (
                json!({"name": "ann", "day": "2023-02-29"}),
                "response.day must be a valid date",
            ),
            (
                json!({"name": "ann", "when": "2024-02-29 10:00"}),
                "response.when",
            ),
            (json!({"name": "ann", "site": "nope"}), "response.site"),
            (
                json!({"name": "ann", "env": "test"}),
                "response.env must be one of",
            ),
            (json!({"name": "ann", "db": "mysql"}), "response.db"),
            (
                json!({"name": "ann", "age": 1.5}),
                "response.age must be a whole number",
            ),
            (
                json!({"name": "ann", "age": 200}),
                "response.age must be between",
            ),
            (
                json!({"name": "ann", "ratio": "1"}),
                "response.ratio must be a number",
            ),
            (
                json!({"name": "ann", "ok": "yes"}),
                "response.ok must be true or false",
            ),
            (
                json!({"name": "ann", "tags": []}),
                "response.tags must pick",
            ),
            (
                json!({"name": "ann", "tags": ["a", "a"]}),
                "response.tags must list distinct",
            ),
            (json!({"name": "ann", "tags": ["d"]}), "response.tags"),
            (json!(["ann"]), "response must be an object"),
        ];
        for (answer, message) in cases {
            let error = check_response(&schema, &answer).unwrap_err().to_string();
            assert!(error.contains(message), "{answer}: {error}");
        }
    }

    #[test]
    fn schemas_outside_the_restricted_subset_are_refused_by_place() {
        let cases = [
            (json!([]), "schema must be an object"),
            (json!({"type": "array"}), "schema.type must be"),
            (
                json!({"type": "object", "properties": {}}),
                "schema.properties must be",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "object"}}}),
                "schema.properties.a.type",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}}),
                "schema.properties.a.pattern is not supported",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "format": "ipv4"}}}),
                "schema.properties.a.format",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "minLength": 3, "maxLength": 1}}}),
                "minLength",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": "0"}}}),
                "schema.properties.a.minimum",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}}}}),
                "schema.properties.a.items must list",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "boolean", "default": 1}}}),
                "schema.properties.a.default",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}),
                "schema.required names",
            ),
            (
                json!({"type": "object", "properties": {"a b": {"type": "string"}}}),
                "property name",
            ),
        ];
        for (schema, message) in cases {
            let error = check_schema(&schema).unwrap_err().to_string();
            assert!(error.contains(message), "{schema}: {error}");
        }
    }
}
