//! ugr's engine in the browser: the native backend compiled for `wasm32-unknown-unknown`,
//! behind a small C-like export surface ([`exports`]) that `examples/web/ugr.js` wraps.
//!
//! This module is the safe core, testable on the host: a [`Session`] holds opened engines
//! by handle and renders recommendations as JSON. Only the native backend is built (no
//! tract), so an artifact without a weight section is refused with the engine's error.

pub mod exports;

use std::fmt::Write as _;

use ugr_core::{BackendChoice, Constraints, Engine, ItemId, SearchOptions, Sid};

/// One request's business rules as the exports receive them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rules<'a> {
    /// Only these items (`None`: every item).
    pub allow: Option<&'a [u32]>,
    /// Never these items.
    pub deny: &'a [u32],
    /// SID prefixes such as `<a_3>` or `<a_3><b_12>`, separated by spaces or commas.
    pub prefixes: &'a str,
}

/// Opened engines by handle (handle `h` is slot `h - 1`; 0 is never a handle).
#[derive(Default)]
pub struct Session {
    engines: Vec<Option<Engine>>,
}

impl Session {
    /// Opens an artifact from its bytes; returns its handle.
    pub fn open(&mut self, bytes: &[u8]) -> Result<u32, String> {
        let engine = Engine::from_bytes_with(bytes, BackendChoice::Native).map_err(|e| e.to_string())?;
        self.engines.push(Some(engine));
        Ok(self.engines.len() as u32)
    }

    /// Closes a handle (unknown handles are ignored).
    pub fn close(&mut self, handle: u32) {
        if let Some(slot) = self.engines.get_mut((handle as usize).wrapping_sub(1)) {
            *slot = None;
        }
    }

    fn engine(&self, handle: u32) -> Result<&Engine, String> {
        self.engines
            .get((handle as usize).wrapping_sub(1))
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("no open model with handle {handle}"))
    }

    /// Recommendations for `history` (item ids, most recent last) as JSON:
    /// `{"items":[{"item":7,"score":-1.25,"confidence":0.4},...],"backend":"native"}`.
    pub fn recommend(
        &self,
        handle: u32,
        history: &[u32],
        k: u32,
        beam: u32,
        exclude: bool,
    ) -> Result<String, String> {
        self.recommend_with(handle, history, k, beam, exclude, &Rules::default())
    }

    /// Marks `items` available or not (one batch, checked whole); returns how many changed.
    pub fn set_available(&self, handle: u32, items: &[u32], available: bool) -> Result<u32, String> {
        let changes: Vec<(ItemId, bool)> = items.iter().map(|&i| (ItemId::new(i), available)).collect();
        let n = self
            .engine(handle)?
            .update_availability(&changes)
            .map_err(|e| e.to_string())?;
        Ok(n as u32)
    }

    /// Recommendations under business rules (see [`Rules`]), as JSON.
    pub fn recommend_with(
        &self,
        handle: u32,
        history: &[u32],
        k: u32,
        beam: u32,
        exclude: bool,
        rules: &Rules<'_>,
    ) -> Result<String, String> {
        let engine = self.engine(handle)?;
        let ids = |v: &[u32]| v.iter().map(|&i| ItemId::new(i)).collect::<Vec<_>>();
        let allow = rules.allow.map(ids);
        let deny = ids(rules.deny);
        let prefixes = rules
            .prefixes
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(|t| Sid::parse(t).map_err(|e| format!("prefix {t:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let constraints = Constraints {
            allow: allow.as_deref(),
            deny: &deny,
            prefixes: &prefixes,
        };
        let history: Vec<ItemId> = history.iter().map(|&i| ItemId::new(i)).collect();
        let opts = SearchOptions {
            beam: beam as usize,
            top_k: k as usize,
            exclude_history: exclude,
            ..SearchOptions::default()
        };
        let recs = engine
            .recommend_with(&history, &constraints, &opts)
            .map_err(|e| e.to_string())?;
        let mut out = String::from("{\"items\":[");
        for (i, r) in recs.items.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            // `{:?}` of an f32 round-trips exactly and is valid JSON for finite values
            // (the engine never returns non-finite scores or confidences).
            let _ = write!(
                out,
                "{sep}{{\"item\":{},\"score\":{:?},\"confidence\":{:?}}}",
                r.item.as_u32(),
                r.score,
                r.confidence
            );
        }
        let _ = write!(out, "],\"backend\":\"{}\"}}", engine.backend().name());
        Ok(out)
    }

    /// The catalog's item ids of a model (for pickers in a page), as a JSON array.
    pub fn items(&self, handle: u32) -> Result<String, String> {
        let ids: Vec<String> = self
            .engine(handle)?
            .catalog()
            .item_ids()
            .iter()
            .map(|i| i.as_u32().to_string())
            .collect();
        Ok(format!("[{}]", ids.join(",")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/tiny-model.ugr"
        ))
        .unwrap()
    }

    #[test]
    fn recommends_like_the_engine() {
        let mut s = Session::default();
        let h = s.open(&tiny()).unwrap();
        let json = s.recommend(h, &[1, 2, 3], 10, 20, false).unwrap();
        let engine = Engine::from_bytes(&tiny()).unwrap();
        let history = [ItemId::new(1), ItemId::new(2), ItemId::new(3)];
        let opts = SearchOptions {
            beam: 20,
            top_k: 10,
            ..SearchOptions::default()
        };
        let first = engine.recommend(&history, &opts).unwrap().items[0].item.as_u32();
        assert!(
            json.starts_with(&format!("{{\"items\":[{{\"item\":{first},")),
            "{json}"
        );
        assert!(json.ends_with("],\"backend\":\"native\"}"), "{json}");
        assert_eq!(json.matches("\"item\":").count(), 10);
    }

    #[test]
    fn rules_and_availability() {
        let mut s = Session::default();
        let h = s.open(&tiny()).unwrap();
        let first = |json: &str| {
            json[json.find("\"item\":").unwrap() + 7..]
                .split(',')
                .next()
                .unwrap()
                .to_string()
        };
        let plain = s.recommend(h, &[1, 2, 3], 10, 20, false).unwrap();
        let top: u32 = first(&plain).parse().unwrap();
        let rules = Rules {
            deny: &[top],
            ..Rules::default()
        };
        let denied = s.recommend_with(h, &[1, 2, 3], 10, 20, false, &rules).unwrap();
        assert!(!denied.contains(&format!("\"item\":{top},")), "{denied}");
        assert_eq!(denied.matches("\"item\":").count(), 10);
        // Unavailable gives the same answer as denied, until it is available again.
        assert_eq!(s.set_available(h, &[top], false).unwrap(), 1);
        assert_eq!(s.recommend(h, &[1, 2, 3], 10, 20, false).unwrap(), denied);
        assert!(
            s.set_available(h, &[top, 4_000_000], true)
                .unwrap_err()
                .contains("not in the catalog")
        );
        assert_eq!(s.set_available(h, &[top], true).unwrap(), 1);
        assert_eq!(s.recommend(h, &[1, 2, 3], 10, 20, false).unwrap(), plain);
        let allow = [40, 41];
        let two = s
            .recommend_with(
                h,
                &[1],
                10,
                20,
                false,
                &Rules {
                    allow: Some(&allow),
                    ..Rules::default()
                },
            )
            .unwrap();
        assert_eq!(two.matches("\"item\":").count(), 2);
        let one_prefix = Rules {
            prefixes: "<a_1>, <a_2><b_0>",
            ..Rules::default()
        };
        assert!(s.recommend_with(h, &[1], 3, 20, false, &one_prefix).is_ok());
        for bad in [
            Rules {
                prefixes: "<a_1",
                ..Rules::default()
            },
            Rules {
                allow: Some(&[]),
                ..Rules::default()
            },
            Rules {
                deny: &[4_000_000],
                ..Rules::default()
            },
        ] {
            assert!(s.recommend_with(h, &[1], 3, 20, false, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut s = Session::default();
        assert!(s.open(b"not an artifact").is_err());
        assert!(
            s.recommend(1, &[1], 10, 20, false)
                .unwrap_err()
                .contains("no open model")
        );
        let h = s.open(&tiny()).unwrap();
        assert!(s.recommend(h, &[1], 10, 0, false).is_err());
        s.close(h);
        assert!(s.recommend(h, &[1], 10, 20, false).is_err());
        s.close(0);
        s.close(99);
    }
}
