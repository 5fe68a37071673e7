// forms.js: a question's form (docs/PROTOCOL.md §5.1), and a question
// whose choices the human may pick several of.
//
// It owns building the fields of a clarify `schema` (label from the title,
// its description, an input by type, an enum as radios or a select, a
// multi-select as checkboxes, required fields marked) and checking the
// answer in the page before it is sent; the server checks it again and
// never trusts the page. Invariants: every string the agent sent is shown
// through visible.js; a refused field says why beside it and nothing is
// sent.

import { escapeVisible, showVisible } from './visible.js';

// An enum with at most this many values shows as radios, else a select.
const RADIOS_UP_TO = 4;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) showVisible(node, text);
  return node;
}

// [{value, label}] of a string enum, enumNames or oneOf / anyOf const+title.
function options(spec) {
  if (Array.isArray(spec.enum)) return spec.enum.map((value, at) => ({ value, label: (spec.enumNames || [])[at] ?? value }));
  const list = spec.oneOf || spec.anyOf;
  if (Array.isArray(list)) return list.map((item) => ({ value: item.const, label: item.title ?? item.const }));
  return null;
}

function choiceInputs(id, type, choices, defaults) {
  const group = element('div', 'form-choices');
  choices.forEach((choice, at) => {
    const label = element('label', 'form-choice');
    const input = document.createElement('input');
    input.type = type;
    input.name = id;
    input.id = `${id}-${at}`;
    input.value = choice.value;
    input.checked = defaults.includes(choice.value);
    label.append(input, ' ', element('span', '', String(choice.label)));
    group.append(label);
  });
  return group;
}

// One field: its nodes, and read() giving {value} (undefined: absent) or {error}.
function buildField(name, spec, required, at) {
  const id = `form-field-${at}`;
  const wrap = element('div', 'form-field');
  const title = escapeVisible(spec.title || name);
  const error = element('p', 'form-error');
  error.id = `${id}-error`;
  error.hidden = true;
  const described = [];
  let control;
  let read;
  const choices = spec.type === 'array' ? options(spec.items || {}) : options(spec);
  const usesGroup = spec.type === 'boolean' || spec.type === 'array' || (choices && choices.length <= RADIOS_UP_TO);
  const label = element(usesGroup ? 'legend' : 'label', 'form-label');
  label.textContent = title;
  if (required) label.append(element('span', 'form-required', ' (required)'));
  if (spec.type === 'boolean') {
    control = element('label', 'form-choice');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.id = id;
    box.checked = spec.default === true;
    control.append(box, ' ', element('span', '', 'Yes'));
    read = () => ({ value: box.checked });
  } else if (spec.type === 'array') {
    control = choiceInputs(id, 'checkbox', choices || [], Array.isArray(spec.default) ? spec.default : []);
    read = () => {
      const picked = [...control.querySelectorAll('input:checked')].map((input) => input.value);
      if (spec.minItems !== undefined && picked.length < spec.minItems) return { error: `Pick at least ${spec.minItems}.` };
      if (spec.maxItems !== undefined && picked.length > spec.maxItems) return { error: `Pick at most ${spec.maxItems}.` };
      if (!picked.length && !required) return { value: undefined };
      if (!picked.length) return { error: 'Pick at least one.' };
      return { value: picked };
    };
  } else if (choices && choices.length <= RADIOS_UP_TO) {
    control = choiceInputs(id, 'radio', choices, spec.default !== undefined ? [spec.default] : []);
    read = () => {
      const picked = control.querySelector('input:checked');
      if (!picked) return required ? { error: 'Pick one.' } : { value: undefined };
      return { value: picked.value };
    };
  } else if (choices) {
    control = document.createElement('select');
    control.id = id;
    control.append(new Option('Choose…', ''));
    for (const choice of choices) control.append(new Option(escapeVisible(choice.label), choice.value));
    control.value = spec.default ?? '';
    read = () => (control.value ? { value: control.value } : required ? { error: 'Pick one.' } : { value: undefined });
  } else {
    control = document.createElement('input');
    control.id = id;
    const numeric = spec.type === 'number' || spec.type === 'integer';
    control.type = numeric ? 'text' : { email: 'email', uri: 'url', date: 'date', 'date-time': 'text' }[spec.format] || 'text';
    if (numeric) control.inputMode = spec.type === 'integer' ? 'numeric' : 'decimal';
    if (spec.default !== undefined) control.value = String(spec.default);
    read = () => (numeric ? readNumber(control.value, spec, required) : readString(control.value, spec, required));
  }
  if (spec.description) {
    const description = element('p', 'form-description', spec.description);
    description.id = `${id}-description`;
    described.push(description.id);
    wrap.append(description);
  }
  described.push(error.id);
  const box = usesGroup ? element('fieldset', 'form-group') : null;
  if (box) {
    box.append(label, ...wrap.childNodes, control, error);
    box.setAttribute('aria-describedby', described.join(' '));
    wrap.append(box);
  } else {
    label.htmlFor = id;
    control.setAttribute('aria-describedby', described.join(' '));
    wrap.prepend(label);
    wrap.append(control, error);
  }
  const mark = (message) => {
    error.hidden = !message;
    error.textContent = message || '';
    if (box) box.toggleAttribute('data-invalid', Boolean(message));
    else if (message) control.setAttribute('aria-invalid', 'true');
    else control.removeAttribute('aria-invalid');
  };
  return { wrap, read, mark, focus: () => (control.matches('input, select') ? control : control.querySelector('input'))?.focus() };
}

function readNumber(text, spec, required) {
  if (!text.trim()) return required ? { error: 'This field is required.' } : { value: undefined };
  const value = Number(text);
  if (!Number.isFinite(value)) return { error: 'Enter a number.' };
  if (spec.type === 'integer' && !Number.isInteger(value)) return { error: 'Enter a whole number.' };
  if (spec.minimum !== undefined && value < spec.minimum) return { error: `At least ${spec.minimum}.` };
  if (spec.maximum !== undefined && value > spec.maximum) return { error: `At most ${spec.maximum}.` };
  return { value };
}

function readString(text, spec, required) {
  if (!text) return required ? { error: 'This field is required.' } : { value: undefined };
  const length = [...text].length;
  if (spec.minLength !== undefined && length < spec.minLength) return { error: `At least ${spec.minLength} characters.` };
  if (spec.maxLength !== undefined && length > spec.maxLength) return { error: `At most ${spec.maxLength} characters.` };
  if (spec.format === 'email' && !EMAIL.test(text)) return { error: 'Enter an email address.' };
  if (spec.format === 'date' && !DATE.test(text)) return { error: 'Enter a date (YYYY-MM-DD).' };
  if (spec.format === 'date-time' && !Number.isFinite(Date.parse(text))) return { error: 'Enter a date and time.' };
  if (spec.format === 'uri') {
    try {
      new URL(text);
    } catch {
      return { error: 'Enter a full address (https://…).' };
    }
  }
  return { value: text };
}

// The form of `schema`: its nodes, and read() giving {value: object} or
// {error} (each refused field marked beside it, the first one focused).
export function schemaForm(schema) {
  const properties = schema && typeof schema.properties === 'object' ? schema.properties : {};
  const required = new Set(Array.isArray(schema?.required) ? schema.required : []);
  const fields = Object.entries(properties).map(([name, spec], at) => ({ name, ...buildField(name, spec || {}, required.has(name), at) }));
  const read = () => {
    const value = {};
    let first = null;
    for (const f of fields) {
      const result = f.read();
      f.mark(result.error);
      if (result.error) first = first || f;
      else if (result.value !== undefined) value[f.name] = result.value;
    }
    if (first) {
      first.focus();
      return { error: 'Some fields need a change.' };
    }
    return { value };
  };
  return { nodes: fields.map((f) => f.wrap), read };
}

// A `multiple` question's choices as checkboxes; read() gives the list.
export function multipleForm(choices) {
  const box = element('fieldset', 'form-group');
  box.append(element('legend', 'form-label', 'Pick one or more'));
  const group = choiceInputs('form-multiple', 'checkbox', choices.map((c) => ({ value: String(c), label: String(c) })), []);
  box.append(group);
  const read = () => {
    const picked = [...group.querySelectorAll('input:checked')].map((input) => input.value);
    return picked.length ? { value: picked } : { error: 'Pick at least one.' };
  };
  return { nodes: [box], read };
}
