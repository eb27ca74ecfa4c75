//! The admin console's presentation: templates, the stylesheet and typed view models. The
//! server's admin handlers decide (through policy) and fill these; this crate cannot reach the
//! store, so the console cannot bypass a decision.

use askama::Template;

/// The console's stylesheet, served as `<asset_base>/admin.css`.
pub const STYLESHEET: &str = include_str!("../static/admin.css");

/// A page that only says something: an error, a confirmation, "not found".
#[derive(Debug, Template)]
#[template(path = "status.html")]
pub struct StatusPage<'a> {
    /// BCP 47 language of the page (`en`, `hi`).
    pub lang: &'a str,
    /// Where the stylesheet is served from, without a trailing slash.
    pub asset_base: &'a str,
    pub title: &'a str,
    pub message: &'a str,
    /// Shown so a person can quote it when asking for help.
    pub request_id: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_page_renders_inside_the_layout_and_escapes_its_text() {
        let page = StatusPage {
            lang: "en",
            asset_base: "/admin/static",
            title: "Not found",
            message: "<script>alert(1)</script>",
            request_id: Some("abc-123"),
        };
        let html = page.render().unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<html lang=\"en\">"));
        assert!(html.contains("<title>Not found · Pramaan</title>"));
        assert!(html.contains("href=\"/admin/static/admin.css\""));
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "no script may reach the page");
        assert!(html.contains("abc-123"));
    }

    #[test]
    fn the_layout_has_no_inline_script_or_style_so_a_strict_csp_holds() {
        let html = StatusPage { lang: "hi", asset_base: "", title: "t", message: "m", request_id: None }
            .render()
            .unwrap();
        assert!(!html.contains("<script") && !html.contains("<style") && !html.contains("style="));
        assert!(!html.contains("Reference:"));
    }

    #[test]
    fn the_stylesheet_loads_nothing_from_outside() {
        assert!(!STYLESHEET.contains("url(") && !STYLESHEET.contains("@import"));
    }
}
