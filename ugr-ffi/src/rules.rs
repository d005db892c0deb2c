//! Business rules and live availability: `ugr_constraints` (read by the recommend calls) and
//! marking items unavailable or available again on an open engine.

use core::ffi::c_char;
use std::ffi::CStr;

use ugr_core::{Constraints, ItemId, Sid};

use crate::boundary::{as_items, boundary, read_sized, try_ref, try_slice};
use crate::engine::ugr_engine;
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
pub(crate) struct OwnedRules {
    allow: Option<Vec<ItemId>>,
    deny: Vec<ItemId>,
    prefixes: Vec<Sid>,
}

impl OwnedRules {
    pub(crate) fn constraints(&self) -> Constraints<'_> {
        Constraints {
            allow: self.allow.as_deref(),
            deny: &self.deny,
            prefixes: &self.prefixes,
        }
    }

    /// # Safety
    /// `c` is NULL or points to a `ugr_constraints` of `struct_size` readable bytes whose
    /// arrays hold their lengths and whose prefixes are NUL-terminated strings.
    pub(crate) unsafe fn read(c: *const ugr_constraints, name: &str) -> Result<OwnedRules, Failure> {
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
