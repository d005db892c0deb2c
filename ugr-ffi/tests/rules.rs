//! Business rules and availability through the C ABI, called as C calls them: results equal
//! the Rust engine's, the `struct_size` rule of extensible structs holds, and every misuse
//! gives its status code.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char};
use std::path::PathBuf;
use std::ptr::{null, null_mut};

use ugr::*;
use ugr_core::{Constraints, Engine, ItemId, SearchOptions, Sid};

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny-model.ugr")
}

fn last_error() -> String {
    // SAFETY: never NULL, NUL-terminated, valid until the next call on this thread.
    unsafe { CStr::from_ptr(ugr_last_error()) }
        .to_string_lossy()
        .into_owned()
}

struct Handle(*mut ugr_engine);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a live handle, freed once.
        unsafe { ugr_engine_free(self.0) };
    }
}

fn open() -> Handle {
    let path = CString::new(model_path().to_str().unwrap()).unwrap();
    let mut engine = null_mut();
    // SAFETY: valid string and output pointer.
    let status = unsafe { ugr_engine_open(path.as_ptr(), &mut engine) };
    assert_eq!(status, ugr_status::Ok);
    Handle(engine)
}

/// Owned rules and the C struct viewing them.
struct Rules {
    allow: Option<Vec<u32>>,
    deny: Vec<u32>,
    prefixes: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl Rules {
    fn new(allow: Option<Vec<u32>>, deny: Vec<u32>, prefixes: &[&str]) -> Rules {
        let prefixes: Vec<CString> = prefixes.iter().map(|p| CString::new(*p).unwrap()).collect();
        let ptrs = prefixes.iter().map(|p| p.as_ptr()).collect();
        Rules {
            allow,
            deny,
            prefixes,
            ptrs,
        }
    }

    fn c(&self) -> ugr_constraints {
        let mut c = ugr_constraints_default();
        if let Some(a) = &self.allow {
            c.use_allow = 1;
            c.allow = a.as_ptr();
            c.allow_len = a.len();
        }
        c.deny = self.deny.as_ptr();
        c.deny_len = self.deny.len();
        c.prefixes = self.ptrs.as_ptr();
        c.prefixes_len = self.ptrs.len();
        c
    }

    fn rust(&self) -> (Option<Vec<ItemId>>, Vec<ItemId>, Vec<Sid>) {
        let ids = |v: &[u32]| v.iter().map(|&i| ItemId::new(i)).collect::<Vec<_>>();
        (
            self.allow.as_deref().map(ids),
            ids(&self.deny),
            self.prefixes
                .iter()
                .map(|p| Sid::parse(p.to_str().unwrap()).unwrap())
                .collect(),
        )
    }
}

fn recommend(
    h: &Handle,
    history: &[u32],
    c: *const ugr_constraints,
    opts: &ugr_options,
) -> Result<Vec<ugr_recommendation>, ugr_status> {
    let mut out = vec![ugr_recommendation::default(); opts.k];
    let mut n = usize::MAX;
    // SAFETY: every pointer is valid for its length.
    let status = unsafe {
        ugr_recommend_constrained(
            h.0,
            history.as_ptr(),
            history.len(),
            c,
            opts,
            out.as_mut_ptr(),
            out.len(),
            &mut n,
        )
    };
    if status != ugr_status::Ok {
        assert_eq!(n, 0);
        assert!(!last_error().is_empty());
        return Err(status);
    }
    out.truncate(n);
    Ok(out)
}

fn rules_cases(engine: &Engine) -> Vec<Rules> {
    let ids: Vec<u32> = engine.catalog().item_ids().iter().map(|i| i.as_u32()).collect();
    let sid = engine.catalog().sid_of(ItemId::new(ids[7])).unwrap();
    let prefix = format!("<a_{}>", sid.codes()[0]);
    let half: Vec<u32> = ids.iter().copied().step_by(2).collect();
    vec![
        Rules::new(None, vec![], &[]),
        Rules::new(None, ids[..3].to_vec(), &[]),
        Rules::new(None, half.clone(), &[]),
        Rules::new(Some(half), vec![ids[0]], &[]),
        Rules::new(None, vec![], &[prefix.as_str()]),
        Rules::new(
            Some(ids[5..40].to_vec()),
            ids[5..8].to_vec(),
            &[prefix.as_str(), "<a_0><b_1>"],
        ),
    ]
}

#[test]
fn constrained_results_equal_the_rust_engine() {
    let h = open();
    let engine = Engine::open(model_path()).unwrap();
    let opts = ugr_options_default();
    let history = [3u32, 9, 14];
    let hist: Vec<ItemId> = history.iter().map(|&i| ItemId::new(i)).collect();
    for rules in rules_cases(&engine) {
        let c = rules.c();
        let got = recommend(&h, &history, &c, &opts).unwrap();
        let (allow, deny, prefixes) = rules.rust();
        let constraints = Constraints {
            allow: allow.as_deref(),
            deny: &deny,
            prefixes: &prefixes,
        };
        let want = engine
            .recommend_with(&hist, &constraints, &SearchOptions::default())
            .unwrap();
        let got: Vec<(u32, f32)> = got.iter().map(|r| (r.item, r.score)).collect();
        let want: Vec<(u32, f32)> = want.items.iter().map(|r| (r.item.as_u32(), r.score)).collect();
        assert_eq!(got, want);
    }
    // NULL constraints: the plain call.
    let mut plain = vec![ugr_recommendation::default(); 10];
    let mut n = 0;
    // SAFETY: valid pointers.
    let status = unsafe { ugr_recommend(h.0, history.as_ptr(), 3, null(), plain.as_mut_ptr(), 10, &mut n) };
    assert_eq!(status, ugr_status::Ok);
    assert_eq!(
        recommend(&h, &history, null(), &opts).unwrap(),
        plain[..n].to_vec()
    );
}

#[test]
fn batches_take_no_one_or_per_user_rules() {
    let h = open();
    let engine = Engine::open(model_path()).unwrap();
    let cases = rules_cases(&engine);
    let structs: Vec<ugr_constraints> = cases.iter().map(Rules::c).collect();
    let histories: Vec<Vec<u32>> = (0..cases.len() as u32).map(|u| vec![u + 1, 2 * u + 3]).collect();
    let items: Vec<u32> = histories.concat();
    let mut offsets = vec![0usize];
    for hist in &histories {
        offsets.push(offsets.last().unwrap() + hist.len());
    }
    let opts = ugr_options_default();
    let users = histories.len();
    let batch = |c: *const ugr_constraints, n_c: usize| -> Result<Vec<Vec<ugr_recommendation>>, ugr_status> {
        let mut out = vec![ugr_recommendation::default(); users * opts.k];
        let mut lens = vec![usize::MAX; users];
        // SAFETY: every pointer is valid for its length.
        let status = unsafe {
            ugr_recommend_batch_constrained(
                h.0,
                items.as_ptr(),
                offsets.as_ptr(),
                users,
                c,
                n_c,
                &opts,
                out.as_mut_ptr(),
                out.len(),
                lens.as_mut_ptr(),
            )
        };
        if status != ugr_status::Ok {
            assert!(lens.iter().all(|&l| l == 0));
            return Err(status);
        }
        Ok((0..users)
            .map(|u| out[u * opts.k..][..lens[u]].to_vec())
            .collect())
    };
    let close = |a: &[ugr_recommendation], b: &[ugr_recommendation]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x.score - y.score).abs() < 1e-5)
    };
    let per_user = batch(structs.as_ptr(), users).unwrap();
    let shared = batch(&structs[1], 1).unwrap();
    let none = batch(null(), 0).unwrap();
    for u in 0..users {
        let single = recommend(&h, &histories[u], &structs[u], &opts).unwrap();
        assert!(close(&per_user[u], &single), "user {u}");
        let single = recommend(&h, &histories[u], &structs[1], &opts).unwrap();
        assert!(close(&shared[u], &single), "user {u}");
        let single = recommend(&h, &histories[u], null(), &opts).unwrap();
        assert!(close(&none[u], &single), "user {u}");
    }
    assert_eq!(
        batch(structs.as_ptr(), 2).unwrap_err(),
        ugr_status::InvalidArgument
    );
    assert_eq!(batch(null(), 1).unwrap_err(), ugr_status::NullParameter);
}

#[test]
fn bad_rules_give_status_codes() {
    let h = open();
    let opts = ugr_options_default();
    let history = [1u32];
    let status = |rules: &Rules| recommend(&h, &history, &rules.c(), &opts).unwrap_err();
    assert_eq!(
        status(&Rules::new(None, vec![u32::MAX], &[])),
        ugr_status::UnknownItem
    );
    assert_eq!(
        status(&Rules::new(Some(vec![1, 4_000_000]), vec![], &[])),
        ugr_status::UnknownItem
    );
    assert_eq!(
        status(&Rules::new(Some(vec![]), vec![], &[])),
        ugr_status::InvalidArgument
    );
    for bad in [
        "",
        "a_1",
        "<a_1",
        "<b_1>",
        "<a_9999>",
        "<a_1><b_2><c_3><d_4><e_5>",
        "<a_1><c_2>",
    ] {
        assert_eq!(
            status(&Rules::new(None, vec![], &[bad])),
            ugr_status::InvalidArgument,
            "{bad:?}"
        );
    }
    // A prefix no catalog SID has allows nothing: no error, no result.
    let codebook = {
        let engine = Engine::open(model_path()).unwrap();
        engine.catalog().vocab().codebook_size(0) - 1
    };
    let absent = format!("<a_{codebook}>");
    let rules = Rules::new(Some(vec![1]), vec![], &[absent.as_str()]);
    assert_eq!(recommend(&h, &history, &rules.c(), &opts).unwrap(), vec![]);
    // NULL inside arrays.
    let mut c = ugr_constraints_default();
    c.deny_len = 2;
    assert_eq!(
        recommend(&h, &history, &c, &opts).unwrap_err(),
        ugr_status::NullParameter
    );
    let nulls = [null::<c_char>()];
    let mut c = ugr_constraints_default();
    c.prefixes = nulls.as_ptr();
    c.prefixes_len = 1;
    assert_eq!(
        recommend(&h, &history, &c, &opts).unwrap_err(),
        ugr_status::NullParameter
    );
}

/// The extensible-struct rule: too small is refused; larger is accepted when the unknown
/// tail is zero and refused otherwise; a caller's smaller (older) struct gets defaults.
#[test]
fn struct_size_rule() {
    let h = open();
    let history = [1u32];
    let mut opts = ugr_options_default();
    opts.struct_size = 8;
    assert_eq!(
        recommend(&h, &history, null(), &opts).unwrap_err(),
        ugr_status::InvalidArgument
    );
    assert!(last_error().contains("struct_size"), "{}", last_error());
    opts.struct_size = 1 << 20;
    assert_eq!(
        recommend(&h, &history, null(), &opts).unwrap_err(),
        ugr_status::InvalidArgument
    );

    /// A caller compiled against a newer header: two more fields.
    #[repr(C)]
    struct Newer {
        base: ugr_options,
        extra: [u64; 2],
    }
    let mut newer = Newer {
        base: ugr_options_default(),
        extra: [0; 2],
    };
    newer.base.struct_size = size_of::<Newer>();
    let plain = recommend(&h, &history, null(), &ugr_options_default()).unwrap();
    assert_eq!(recommend(&h, &history, null(), &newer.base).unwrap(), plain);
    newer.extra[1] = 1;
    assert_eq!(
        recommend(&h, &history, null(), &newer.base).unwrap_err(),
        ugr_status::InvalidArgument
    );
    assert!(last_error().contains("upgrade libugr"), "{}", last_error());

    let mut newer_c = (ugr_constraints_default(), [0u64; 1]);
    newer_c.0.struct_size = size_of::<(ugr_constraints, [u64; 1])>();
    assert!(recommend(&h, &history, &newer_c.0, &ugr_options_default()).is_ok());
    let mut small = ugr_constraints_default();
    small.struct_size = 4;
    assert_eq!(
        recommend(&h, &history, &small, &ugr_options_default()).unwrap_err(),
        ugr_status::InvalidArgument
    );
}

#[test]
fn availability_through_the_c_abi() {
    let h = open();
    let opts = ugr_options_default();
    let history = [2u32, 5];
    let before = recommend(&h, &history, null(), &opts).unwrap();
    let changes: Vec<ugr_availability_change> = before
        .iter()
        .take(3)
        .map(|r| ugr_availability_change {
            item: r.item,
            available: 0,
        })
        .collect();
    let mut changed = 99;
    // SAFETY: valid pointers.
    let status = unsafe { ugr_engine_update_availability(h.0, changes.as_ptr(), 3, &mut changed) };
    assert_eq!((status, changed), (ugr_status::Ok, 3));
    let mut yes = 7;
    // SAFETY: valid pointers.
    let status = unsafe { ugr_engine_is_available(h.0, before[0].item, &mut yes) };
    assert_eq!(status, ugr_status::Ok);
    assert_eq!(yes, 0);
    let during = recommend(&h, &history, null(), &opts).unwrap();
    assert_eq!(during.len(), 10);
    assert!(during.iter().all(|r| changes.iter().all(|c| c.item != r.item)));
    // A batch with an unknown item changes nothing.
    let bad = [
        ugr_availability_change {
            item: before[0].item,
            available: 1,
        },
        ugr_availability_change {
            item: u32::MAX,
            available: 1,
        },
    ];
    // SAFETY: valid pointers; `changed` may be NULL.
    let status = unsafe { ugr_engine_update_availability(h.0, bad.as_ptr(), 2, null_mut()) };
    assert_eq!(status, ugr_status::UnknownItem);
    assert_eq!(recommend(&h, &history, null(), &opts).unwrap(), during);
    let back: Vec<ugr_availability_change> = changes
        .iter()
        .map(|c| ugr_availability_change { available: 1, ..*c })
        .collect();
    // SAFETY: valid pointers.
    let status = unsafe { ugr_engine_update_availability(h.0, back.as_ptr(), 3, null_mut()) };
    assert_eq!(status, ugr_status::Ok);
    assert_eq!(recommend(&h, &history, null(), &opts).unwrap(), before);
    // Misuse.
    // SAFETY: NULL engine and NULL output are checked.
    unsafe {
        assert_eq!(
            ugr_engine_update_availability(null(), back.as_ptr(), 3, null_mut()),
            ugr_status::NullParameter
        );
        assert_eq!(
            ugr_engine_update_availability(h.0, null(), 3, null_mut()),
            ugr_status::NullParameter
        );
        assert_eq!(
            ugr_engine_is_available(h.0, 1, null_mut()),
            ugr_status::NullParameter
        );
        assert_eq!(
            ugr_engine_is_available(h.0, u32::MAX, &mut yes),
            ugr_status::UnknownItem
        );
    }
}

/// `ugr_engine_replace_catalog`: the engine serves the new catalog, titles handed out before
/// stay readable, another model's artifact is refused and the engine keeps its catalog.
#[test]
fn catalog_replacement_through_the_c_abi() {
    let h = open();
    let opts = ugr_options_default();
    let history = [5u32, 6];
    let before = recommend(&h, &history, null(), &opts).unwrap();
    let (mut title, mut len) = (null(), 0usize);
    // SAFETY: valid pointers.
    let status = unsafe { ugr_engine_title(h.0, before[0].item, &mut title, &mut len) };
    assert_eq!(status, ugr_status::Ok);
    // A catalog without the first two recommended items.
    let bundle = ugr_core::Bundle::from_bytes(&std::fs::read(model_path()).unwrap()).unwrap();
    let gone = [ItemId::new(before[0].item), ItemId::new(before[1].item)];
    let (changed, _) = ugr_core::served::change_catalog(bundle, &gone, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("changed.ugr");
    std::fs::write(&path, changed.to_bytes().unwrap()).unwrap();
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: valid pointers.
    let status = unsafe { ugr_engine_replace_catalog(h.0, cpath.as_ptr()) };
    assert_eq!(status, ugr_status::Ok, "{}", last_error());
    let after = recommend(&h, &history, null(), &opts).unwrap();
    assert_eq!(after.len(), 10);
    assert!(
        after
            .iter()
            .all(|r| r.item != before[0].item && r.item != before[1].item)
    );
    // SAFETY: the view handed out before the replacement stays valid until free.
    let old_title = unsafe { std::slice::from_raw_parts(title.cast::<u8>(), len) };
    assert!(
        std::str::from_utf8(old_title)
            .unwrap()
            .starts_with("synthetic item")
    );
    // Another model, a missing file, NULL: refused; the engine keeps serving its catalog.
    let mut other = changed.clone();
    other.model.as_mut().unwrap().config_json.push(' ');
    let other_path = dir.path().join("other.ugr");
    std::fs::write(&other_path, other.to_bytes().unwrap()).unwrap();
    let other_c = CString::new(other_path.to_str().unwrap()).unwrap();
    let missing = CString::new("/nonexistent/x.ugr").unwrap();
    // SAFETY: valid pointers, or NULL (checked).
    unsafe {
        assert_eq!(
            ugr_engine_replace_catalog(h.0, other_c.as_ptr()),
            ugr_status::InvalidArgument
        );
        assert_eq!(ugr_engine_replace_catalog(h.0, missing.as_ptr()), ugr_status::Io);
        assert_eq!(ugr_engine_replace_catalog(h.0, null()), ugr_status::NullParameter);
        assert_eq!(
            ugr_engine_replace_catalog(null(), cpath.as_ptr()),
            ugr_status::NullParameter
        );
    }
    assert_eq!(recommend(&h, &history, null(), &opts).unwrap(), after);
}
