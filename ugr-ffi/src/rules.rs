//! Business rules and live availability: `ugr_constraints`, the constrained recommend calls,
//! and marking items unavailable or available again on an open engine.

use core::ffi::c_char;
use std::ffi::CStr;

use ugr_core::{Constraints, ItemId, Request, Sid};

use crate::boundary::{boundary, read_sized, try_ref, try_slice, try_slice_mut};
use crate::engine::ugr_engine;
use crate::recommend::{BATCH_CHUNK, as_items, batch_failure, read_options, ugr_options, ugr_recommendation};
use crate::status::{Failure, ugr_status};

/// The business rules of a request, enforced inside the search (not by filtering its output):
/// the results are what a catalog holding only the allowed items would give, and K of them
/// come back whenever the catalog has K allowed items. Start from `ugr_constraints_default()`
/// (no rule) and set what applies. Grows at its end like `ugr_options` (same `struct_size` rule).
///
/// Allowed items: the allowlist (every item when `use_allow` is 0), restricted to items
/// whose SID starts with one of `prefixes` (when any are given), minus `deny`, minus the
/// history when `exclude_history` is set, minus items marked unavailable. Scores are the
/// model's, unchanged by the rules. Every listed id must be a catalog item
/// (`UGR_STATUS_UNKNOWN_ITEM`); a malformed prefix, or `use_allow` with an empty
/// allowlist, is `UGR_STATUS_INVALID_ARGUMENT`. A prefix no catalog SID has allows nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ugr_constraints {
    /// `sizeof(ugr_constraints)` as the caller compiled it (`ugr_constraints_default()` sets it).
    pub struct_size: usize,
    /// Non-zero: only items of `allow` may be returned. (A flag rather than a NULL test, so
    /// that an empty allowlist is an error instead of "allow everything".)
    pub use_allow: u32,
    /// `allow_len` item ids (used when `use_allow` is non-zero).
    pub allow: *const u32,
    /// Length of `allow`.
    pub allow_len: usize,
    /// `deny_len` item ids never to return; `(NULL, 0)` for none.
    pub deny: *const u32,
    /// Length of `deny`.
    pub deny_len: usize,
    /// `prefixes_len` NUL-terminated SID prefixes such as `"<a_3>"` or `"<a_3><b_12>"` (1 to
    /// L levels: a category in SID space); `(NULL, 0)` for no restriction.
    pub prefixes: *const *const c_char,
    /// Length of `prefixes`.
    pub prefixes_len: usize,
}

/// No rule: every item allowed.
#[unsafe(no_mangle)]
pub extern "C" fn ugr_constraints_default() -> ugr_constraints {
    ugr_constraints {
        struct_size: size_of::<ugr_constraints>(),
        use_allow: 0,
        allow: std::ptr::null(),
        allow_len: 0,
        deny: std::ptr::null(),
        deny_len: 0,
        prefixes: std::ptr::null(),
        prefixes_len: 0,
    }
}

/// The smallest `struct_size` accepted (this first version, up to `prefixes_len`).
const CONSTRAINTS_MIN_SIZE: usize = core::mem::offset_of!(ugr_constraints, prefixes_len) + size_of::<usize>();

/// One request's rules copied out of the caller's memory.
#[derive(Debug, Default)]
struct OwnedRules {
    allow: Option<Vec<ItemId>>,
    deny: Vec<ItemId>,
    prefixes: Vec<Sid>,
}

impl OwnedRules {
    fn constraints(&self) -> Constraints<'_> {
        Constraints {
            allow: self.allow.as_deref(),
            deny: &self.deny,
            prefixes: &self.prefixes,
        }
    }

    /// # Safety
    /// `c` is NULL or points to a `ugr_constraints` of `struct_size` readable bytes whose
    /// arrays hold their lengths and whose prefixes are NUL-terminated strings.
    unsafe fn read(c: *const ugr_constraints, name: &str) -> Result<OwnedRules, Failure> {
        if c.is_null() {
            return Ok(OwnedRules::default());
        }
        // SAFETY: non-NULL; readable `struct_size` bytes of plain old data by contract.
        let c = unsafe {
            read_sized(
                c,
                ugr_constraints_default(),
                CONSTRAINTS_MIN_SIZE,
                "ugr_constraints",
            )?
        };
        // SAFETY: the array contracts above.
        let (allow, deny, prefixes) = unsafe {
            (
                try_slice(c.allow, c.allow_len, &format!("{name}.allow"))?,
                try_slice(c.deny, c.deny_len, &format!("{name}.deny"))?,
                try_slice(c.prefixes, c.prefixes_len, &format!("{name}.prefixes"))?,
            )
        };
        let prefixes = prefixes
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                if p.is_null() {
                    return Err(Failure::null(&format!("{name}.prefixes[{i}]")));
                }
                // SAFETY: non-NULL and NUL-terminated by contract.
                let text = unsafe { CStr::from_ptr(p) }
                    .to_str()
                    .map_err(|_| Failure::invalid(format!("{name}.prefixes[{i}] is not UTF-8")))?;
                Sid::parse(text).map_err(|e| Failure::invalid(format!("{name}.prefixes[{i}] {text:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OwnedRules {
            allow: (c.use_allow != 0).then(|| as_items(allow)),
            deny: as_items(deny),
            prefixes,
        })
    }
}

/// Like `ugr_recommend`, under business rules (`constraints`: NULL for none).
///
/// # Safety
/// As `ugr_recommend`; `constraints` is NULL or a valid `ugr_constraints` (see its fields).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ugr_recommend_constrained(
    engine: *const ugr_engine,
    history: *const u32,
    history_len: usize,
    constraints: *const ugr_constraints,
    options: *const ugr_options,
    out: *mut ugr_recommendation,
    out_capacity: usize,
    out_len: *mut usize,
) -> ugr_status {
    boundary(|| {
        if out_len.is_null() {
            return Err(Failure::null("out_len"));
        }
        // SAFETY: checked non-NULL and writable by contract.
        unsafe { out_len.write(0) };
        // SAFETY: the pointer contracts above.
        let (engine, history, rules, opts, out) = unsafe {
            (
                try_ref(engine, "engine")?,
                try_slice(history, history_len, "history")?,
                OwnedRules::read(constraints, "constraints")?,
                read_options(options)?,
                try_slice_mut(out, out_capacity, "out")?,
            )
        };
        if out.len() < opts.top_k {
            return Err(Failure::new(
                ugr_status::BufferTooSmall,
                format!("`out` holds {} entries, k is {}", out.len(), opts.top_k),
            ));
        }
        let recs = engine
            .inner
            .recommend_with(&as_items(history), &rules.constraints(), &opts)
            .map_err(|e| Failure::recommending(&e))?;
        for (slot, r) in out.iter_mut().zip(&recs.items) {
            *slot = r.into();
        }
        // SAFETY: as above.
        unsafe { out_len.write(recs.items.len().min(opts.top_k)) };
        Ok(())
    })
}

/// Like `ugr_recommend_batch`, under business rules: `n_constraints` is 0 (`constraints`
/// may be NULL: no rule), 1 (one set of rules for every user) or `n_users` (user `u` gets
/// `constraints[u]`).
///
/// # Safety
/// As `ugr_recommend_batch`; `constraints` is NULL or holds `n_constraints` valid structs.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ugr_recommend_batch_constrained(
    engine: *const ugr_engine,
    items: *const u32,
    offsets: *const usize,
    n_users: usize,
    constraints: *const ugr_constraints,
    n_constraints: usize,
    options: *const ugr_options,
    out: *mut ugr_recommendation,
    out_capacity: usize,
    out_lens: *mut usize,
) -> ugr_status {
    boundary(|| {
        // SAFETY: the pointer contracts above.
        let out_lens = unsafe { try_slice_mut(out_lens, n_users, "out_lens") }?;
        out_lens.fill(0);
        if n_users == 0 {
            return Ok(());
        }
        if n_constraints != 0 && n_constraints != 1 && n_constraints != n_users {
            return Err(Failure::invalid(format!(
                "`n_constraints` is {n_constraints}: give 0, 1 or n_users ({n_users})"
            )));
        }
        // SAFETY: the pointer contracts above.
        let (engine, offsets, opts, structs) = unsafe {
            (
                try_ref(engine, "engine")?,
                try_slice(offsets, n_users + 1, "offsets")?,
                read_options(options)?,
                try_slice(constraints, n_constraints, "constraints")?,
            )
        };
        let rules = structs
            .iter()
            .enumerate()
            // SAFETY: each element is a valid struct by contract.
            .map(|(u, c)| unsafe { OwnedRules::read(c, &format!("constraints[{u}]")) })
            .collect::<Result<Vec<_>, _>>()?;
        if offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(Failure::invalid("`offsets` must be non-decreasing"));
        }
        let k = opts.top_k;
        let needed = n_users
            .checked_mul(k)
            .ok_or_else(|| Failure::invalid("`n_users * k` overflows"))?;
        if out_capacity < needed {
            return Err(Failure::new(
                ugr_status::BufferTooSmall,
                format!("`out` holds {out_capacity} entries, n_users * k is {needed}"),
            ));
        }
        // SAFETY: the pointer contracts above.
        let (items, out) = unsafe {
            (
                try_slice(items, offsets[n_users], "items")?,
                try_slice_mut(out, needed, "out")?,
            )
        };
        let none = OwnedRules::default();
        let rules_of = |u: usize| rules.get(if rules.len() == 1 { 0 } else { u }).unwrap_or(&none);
        let mut lens = vec![0usize; n_users];
        for start in (0..n_users).step_by(BATCH_CHUNK) {
            let end = (start + BATCH_CHUNK).min(n_users);
            let owned: Vec<Vec<ItemId>> = (start..end)
                .map(|u| as_items(&items[offsets[u]..offsets[u + 1]]))
                .collect();
            let requests: Vec<Request<'_>> = (start..end)
                .zip(&owned)
                .map(|(u, h)| Request {
                    history: h,
                    constraints: rules_of(u).constraints(),
                })
                .collect();
            let recs = engine
                .inner
                .recommend_requests(&requests, &opts)
                .map_err(|e| batch_failure(&e, start, &owned))?;
            for (u, r) in (start..end).zip(&recs) {
                for (slot, rec) in out[u * k..(u + 1) * k].iter_mut().zip(&r.items) {
                    *slot = rec.into();
                }
                lens[u] = r.items.len().min(k);
            }
        }
        out_lens.copy_from_slice(&lens);
        Ok(())
    })
}

/// One availability change: `item` becomes available (`available` non-zero) or unavailable (0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ugr_availability_change {
    /// A catalog item id.
    pub item: u32,
    /// Non-zero: available again; 0: unavailable (out of stock, withdrawn).
    pub available: u32,
}

/// Applies `n_changes` availability changes, in order, as one batch, while other threads
/// may be serving: a request sees the whole batch or none of it, and every request that
/// starts after this call returns sees it. An unavailable item is never returned and a SID
/// prefix whose items are all unavailable is never expanded, exactly as if the catalog did
/// not hold it; marking it available again restores it. Cost O(levels) per change; no
/// reopen, no copy. Every item is checked first: an unknown id gives
/// `UGR_STATUS_UNKNOWN_ITEM` and changes nothing. `*changed` (optional, may be NULL)
/// receives how many items changed state. Every engine opens with all items available.
///
/// # Safety
/// `engine` is NULL or live; `changes` is NULL or holds `n_changes` structs; `changed` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_engine_update_availability(
    engine: *const ugr_engine,
    changes: *const ugr_availability_change,
    n_changes: usize,
    changed: *mut usize,
) -> ugr_status {
    boundary(|| {
        if !changed.is_null() {
            // SAFETY: non-NULL and writable by contract.
            unsafe { changed.write(0) };
        }
        // SAFETY: the pointer contracts above.
        let (engine, changes) = unsafe {
            (
                try_ref(engine, "engine")?,
                try_slice(changes, n_changes, "changes")?,
            )
        };
        let batch: Vec<(ItemId, bool)> = changes
            .iter()
            .map(|c| (ItemId::new(c.item), c.available != 0))
            .collect();
        let n = engine
            .inner
            .update_availability(&batch)
            .map_err(|e| Failure::recommending(&e))?;
        if !changed.is_null() {
            // SAFETY: as above.
            unsafe { changed.write(n) };
        }
        Ok(())
    })
}

/// Sets `*available` to 1 when `item` is available now, 0 when it was marked unavailable.
///
/// # Safety
/// `engine` is NULL or live; `available` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_engine_is_available(
    engine: *const ugr_engine,
    item: u32,
    available: *mut u32,
) -> ugr_status {
    boundary(|| {
        if available.is_null() {
            return Err(Failure::null("available"));
        }
        // SAFETY: the pointer contracts above.
        let engine = unsafe { try_ref(engine, "engine")? };
        let yes = engine
            .inner
            .is_available(ItemId::new(item))
            .map_err(|e| Failure::recommending(&e))?;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { available.write(u32::from(yes)) };
        Ok(())
    })
}
