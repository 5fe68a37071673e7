//! The page: the files of `www/`, embedded at build time by `build.rs`.
//!
//! `/` is `index.html`; `/NAME` is the file of that name. Nothing is read
//! from disk at run time, so the binary is the whole product.

use crate::serve::http::Response;

static FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/www.rs"));

/// The file a path names, if the page has one.
pub fn lookup(path: &str) -> Option<Response> {
    let name = match path {
        "/" => "index.html",
        _ => path.strip_prefix('/')?,
    };
    let (_, bytes) = FILES.iter().find(|(file, _)| *file == name)?;
    let response = Response::text(200, content_type(name), bytes.to_vec())
        .with_header("Cache-Control", "no-cache".into())
        .with_header("X-Content-Type-Options", "nosniff".into());
    if name.ends_with(".html") {
        // Prompt text is untrusted: even if it ever reached the DOM as
        // markup, no inline script or foreign resource would run.
        return Some(
            response.with_header("Content-Security-Policy", CONTENT_SECURITY_POLICY.into()),
        );
    }
    Some(response)
}

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "webmanifest") => "application/json",
        _ => "application/octet-stream",
    }
}
