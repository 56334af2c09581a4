//! A minimal JSON value and serializer, so the probe needs no dependency
//! besides `libc`. Output only: the probe never parses JSON.

use std::fmt::Write as _;

/// A JSON value, built by the probe and rendered once at the end.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Arr(Vec<Json>),
    /// Keys keep insertion order; duplicates are the caller's problem.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// `Some(v)` becomes `v`, `None` becomes `null`.
    pub fn opt<T: Into<Json>>(v: Option<T>) -> Json {
        v.map_or(Json::Null, Into::into)
    }

    /// Renders the value as compact JSON text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{n}");
            }
            Json::Str(s) => escape_into(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render_into(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    escape_into(key, out);
                    out.push(':');
                    value.render_into(out);
                }
                out.push('}');
            }
        }
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<i64> for Json {
    fn from(n: i64) -> Json {
        Json::Int(n)
    }
}

impl From<i32> for Json {
    fn from(n: i32) -> Json {
        Json::Int(i64::from(n))
    }
}

impl From<u32> for Json {
    fn from(n: u32) -> Json {
        Json::Int(i64::from(n))
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_owned())
    }
}

/// Builds a `Json::Obj` field by field.
#[derive(Debug, Default)]
pub struct ObjBuilder {
    fields: Vec<(String, Json)>,
}

impl ObjBuilder {
    pub fn new() -> ObjBuilder {
        ObjBuilder::default()
    }

    /// Adds one field and returns the builder.
    pub fn field(mut self, key: &str, value: impl Into<Json>) -> ObjBuilder {
        self.fields.push((key.to_owned(), value.into()));
        self
    }

    /// Adds one field in place.
    pub fn push(&mut self, key: &str, value: impl Into<Json>) {
        self.fields.push((key.to_owned(), value.into()));
    }

    pub fn build(self) -> Json {
        Json::Obj(self.fields)
    }
}

impl From<ObjBuilder> for Json {
    fn from(b: ObjBuilder) -> Json {
        b.build()
    }
}

/// Writes `s` as a quoted JSON string: `"` and `\` are escaped, control
/// characters become `\n`-style or `\u00XX` escapes, everything else
/// (including non-ASCII) is copied as UTF-8.
pub fn escape_into(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Returns `s` as a quoted JSON string.
#[cfg(test)]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    escape_into(s, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_and_backslashes() {
        assert_eq!(escape(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("\n\r\t\u{08}\u{0c}"), r#""\n\r\t\b\f""#);
        assert_eq!(escape("\u{0}\u{1f}\u{7f}"), r#""\u0000\u001f\u007f""#);
    }

    #[test]
    fn keeps_unicode_as_is() {
        assert_eq!(escape("héllo ☃ \u{2028}"), "\"héllo ☃ \u{2028}\"");
    }

    #[test]
    fn empty_string() {
        assert_eq!(escape(""), "\"\"");
    }

    #[test]
    fn renders_nested_values() {
        let v = ObjBuilder::new()
            .field("a", 1i64)
            .field("b", Json::Arr(vec![Json::Null, true.into(), "x\"".into()]))
            .field("c", ObjBuilder::new().build())
            .field("k\ney", -5i32)
            .build();
        assert_eq!(
            v.render(),
            r#"{"a":1,"b":[null,true,"x\""],"c":{},"k\ney":-5}"#
        );
    }

    #[test]
    fn opt_maps_none_to_null() {
        assert_eq!(Json::opt::<i64>(None), Json::Null);
        assert_eq!(Json::opt(Some("v")), Json::Str("v".to_owned()));
    }
}
