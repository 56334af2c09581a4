//! `--caps-policy FILE`: which capabilities the workload keeps.
//!
//! ```toml
//! [bounding]
//! keep = ["CAP_NET_BIND_SERVICE"]
//! [ambient]
//! keep = ["CAP_NET_BIND_SERVICE"]
//! ```
//!
//! Names are the kernel's (`capabilities(7)`, `CAP_` prefix included);
//! every ambient capability must also be kept in the bounding set. The
//! default (`config/caps-default.toml`) keeps nothing.

use anyhow::Result;
use protocol::{CapSet, Capabilities, Capability};
use serde::Deserialize;
use toml::Spanned;

use crate::policy::Source;

pub const DEFAULT_FILE: &str = "caps-default.toml";
pub const DEFAULT_TEXT: &str = include_str!("../../config/caps-default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    bounding: Section,
    #[serde(default)]
    ambient: Section,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    keep: Vec<CapName>,
}

/// Where the ambient names are, read again only to place an error (a
/// `Spanned` element would blur the position of a bad name).
#[derive(Debug, Default, Deserialize)]
struct AmbientPositions {
    #[serde(default)]
    ambient: PositionsSection,
}

#[derive(Debug, Default, Deserialize)]
struct PositionsSection {
    #[serde(default)]
    keep: Vec<Spanned<String>>,
}

/// A capability named in a policy file. Checked in the visitor, so that
/// the parser places an error at the name itself.
#[derive(Debug, Clone, Copy)]
struct CapName(Capability);

impl<'de> Deserialize<'de> for CapName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = CapName;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a capability name like \"CAP_NET_BIND_SERVICE\"")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<CapName, E> {
                Capability::from_name(name).map(CapName).ok_or_else(|| {
                    E::custom(format!("unknown capability {name:?}; use the names of capabilities(7), like \"CAP_NET_BIND_SERVICE\""))
                })
            }
        }
        d.deserialize_str(Name)
    }
}

/// Parses and checks a capabilities policy.
pub fn parse(src: &Source) -> Result<Capabilities> {
    let file: File = src.parse_toml()?;
    let set = |s: &Section| s.keep.iter().map(|c| c.0).collect::<CapSet>();
    let bounding = set(&file.bounding);
    if let Some(i) = file
        .ambient
        .keep
        .iter()
        .position(|c| !bounding.contains(c.0))
    {
        let offset = src
            .parse_toml::<AmbientPositions>()
            .ok()
            .and_then(|p| p.ambient.keep.get(i).map(|s| s.span().start));
        return Err(src.error_at(
            offset,
            &format!("ambient.keep[{i}]"),
            &format!(
                "{} is not kept in the bounding set; add it to [bounding] keep too",
                file.ambient.keep[i].0
            ),
        ));
    }
    Capabilities::new(bounding, set(&file.ambient))
        .map_err(|e| src.error_at(None, "ambient.keep", &e.to_string()))
}

/// The embedded `config/caps-default.toml`.
pub fn default_capabilities() -> Result<Capabilities> {
    parse(&Source::builtin(DEFAULT_FILE, DEFAULT_TEXT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(text: &str) -> Result<Capabilities> {
        parse(&Source {
            name: "--caps-policy t.toml".into(),
            text: text.into(),
        })
    }

    fn err(text: &str) -> String {
        format!("{:#}", caps(text).unwrap_err())
    }

    #[test]
    fn the_embedded_default_is_the_shipped_file_and_keeps_nothing() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/caps-default.toml");
        assert_eq!(std::fs::read(path).unwrap(), DEFAULT_TEXT.as_bytes());
        assert_eq!(default_capabilities().unwrap(), Capabilities::NONE);
    }

    #[test]
    fn the_example_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/caps-example.toml");
        let c = caps(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(c.ambient().contains(Capability::NET_BIND_SERVICE));
    }

    #[test]
    fn keeps_what_it_names() {
        let c = caps(
            "[bounding]\nkeep = [\"CAP_NET_BIND_SERVICE\", \"CAP_CHOWN\"]\n[ambient]\nkeep = [\"CAP_NET_BIND_SERVICE\"]\n",
        )
        .unwrap();
        assert_eq!(c.bounding().bits(), 1 << 10 | 1);
        assert_eq!(c.ambient().bits(), 1 << 10);
        assert_eq!(caps("").unwrap(), Capabilities::NONE);
    }

    #[test]
    fn unknown_capability_is_named_with_its_position() {
        let e = err("[bounding]\nkeep = [\"CAP_CHOWN\", \"CAP_FLY\"]\n");
        assert!(
            e.starts_with(
                "--caps-policy t.toml:2:22: bounding.keep[1]: unknown capability \"CAP_FLY\""
            ),
            "{e}"
        );
    }

    #[test]
    fn ambient_must_be_in_bounding() {
        let e = err("[bounding]\nkeep = []\n[ambient]\nkeep = [\"CAP_NET_RAW\"]\n");
        assert!(e.starts_with("--caps-policy t.toml:4:9: ambient.keep[0]: CAP_NET_RAW is not kept in the bounding set"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = err("[bounding]\nkeep = []\ndrop = []\n");
        assert!(e.starts_with("--caps-policy t.toml:3:1"), "{e}");
        assert!(e.contains("unknown field `drop`"), "{e}");
        let e = err("[effective]\nkeep = []\n");
        assert!(e.contains("unknown field `effective`"), "{e}");
    }

    #[test]
    fn wrong_types_are_named() {
        let e = err("[bounding]\nkeep = \"CAP_CHOWN\"\n");
        assert!(
            e.starts_with("--caps-policy t.toml:2:8: bounding.keep: invalid type: string"),
            "{e}"
        );
        let e = err("[bounding]\nkeep = [1]\n");
        assert!(
            e.starts_with("--caps-policy t.toml:2:9: bounding.keep[0]: invalid type: integer"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = err("[bounding\nkeep = []\n");
        assert!(
            e.starts_with("--caps-policy t.toml:1:10: unclosed table"),
            "{e}"
        );
        let e = err("[bounding]\nkeep = []\nkeep = []\n");
        assert_eq!(e, "--caps-policy t.toml:3:1: keep: duplicate key");
    }
}
