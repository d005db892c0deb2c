//! Recommending: options, results, one user and a batch of users, with or without business rules.

use ugr_core::search::MAX_WIDTH;
use ugr_core::{Error, ItemId, Pruning, RankBy, Recommendation, Request, SearchOptions};

use crate::boundary::{as_items, boundary, read_sized, try_ref, try_slice, try_slice_mut};
use crate::engine::ugr_engine;
use crate::rules::{OwnedRules, ugr_constraints};
use crate::status::{Failure, ugr_status};

/// Values of `ugr_options.pruning`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ugr_pruning {
    /// Plain beam search (default).
    Off = 0,
    /// Drop beams more than `prune_margin` nats below the best beam.
    Fixed = 1,
    /// A margin between `prune_min_margin` (easy, peaked requests) and `prune_max_margin`
    /// (hard, flat requests), from the entropy of the first `prune_levels` levels.
    Adaptive = 2,
}

/// Values of `ugr_options.rank_by`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ugr_rank_by {
    /// Beam score (mean token log-prob), best first (default).
    Score = 0,
    /// Hybrid score `exp(score) + beta * confidence`, best first.
    Hybrid = 1,
}

/// Options of a recommendation call. Start from `ugr_options_default()` and change fields.
///
/// Enumerations and flags are plain integers so that any value is safe to pass: unknown
/// values give `UGR_STATUS_INVALID_ARGUMENT`.
///
/// The struct grows only at its end, and `struct_size` says how much of it the caller has:
/// a caller compiled against an older header keeps working (libugr gives the fields it did
/// not know their defaults), and one compiled against a newer header works with an older
/// libugr as long as it leaves the newer fields at their defaults (zero); otherwise the call
/// fails with `UGR_STATUS_INVALID_ARGUMENT` instead of ignoring a setting.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ugr_options {
    /// `sizeof(ugr_options)` as the caller compiled it (`ugr_options_default()` sets it).
    pub struct_size: usize,
    /// Items returned per user (K), 1..=65536 (default 10). A catalog with fewer items
    /// returns them all.
    pub k: usize,
    /// Beams kept per SID level, 1..=65536 (default 20). The search keeps max(beam, k).
    pub beam: usize,
    /// Non-zero: never return an item of the user's history (default 0).
    pub exclude_history: u32,
    /// A `ugr_pruning` value (default `UGR_PRUNING_OFF`).
    pub pruning: u32,
    /// Margin in nats for `UGR_PRUNING_FIXED` (finite, >= 0; default 3).
    pub prune_margin: f32,
    /// Smallest margin for `UGR_PRUNING_ADAPTIVE` (default 2).
    pub prune_min_margin: f32,
    /// Largest margin for `UGR_PRUNING_ADAPTIVE` (default 6).
    pub prune_max_margin: f32,
    /// Levels whose entropy sets the adaptive margin, >= 1 (default 1).
    pub prune_levels: u32,
    /// Abstention: items whose calibrated confidence is below this are dropped, so fewer
    /// than K may come back. In [0, 1]; 0 keeps every item (default 0).
    pub min_confidence: f32,
    /// A `ugr_rank_by` value (default `UGR_RANK_BY_SCORE`).
    pub rank_by: u32,
    /// Weight of the confidence in the hybrid score (default 0.5).
    pub beta: f32,
}

/// One recommended item.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ugr_recommendation {
    /// The item id (as in the catalog and the histories).
    pub item: u32,
    /// Ranking score (<= 0; higher is better): the mean token log-prob of the item's SID,
    /// plus, when the model has an item head, its fitted weight times the item head's
    /// log-probability of that SID (the fused score the model was validated with).
    pub score: f32,
    /// Calibrated confidence in [0, 1]: the bundle's calibration map applied to the learned
    /// confidence (models with confidence tokens) or else to `posterior`.
    pub confidence: f32,
    /// `exp(score) + beta * uncalibrated confidence` (the ranking key of `UGR_RANK_BY_HYBRID`).
    pub hybrid: f32,
    /// Softmax of the scores of the (up to) `k` items ranked for this user, taken before
    /// `min_confidence` drops any: it sums to 1 over the results when none was dropped, and
    /// to less than 1 when `min_confidence` dropped some (the kept items are not renormalised:
    /// their `confidence` was computed from this value).
    pub posterior: f32,
    /// Probability of the whole SID under the model, `exp(sum of token log-probs)`.
    pub sequence_prob: f32,
}

impl From<&Recommendation> for ugr_recommendation {
    fn from(r: &Recommendation) -> Self {
        ugr_recommendation {
            item: r.item.as_u32(),
            score: r.score,
            confidence: r.confidence,
            hybrid: r.hybrid,
            posterior: r.posterior,
            sequence_prob: r.sequence_prob,
        }
    }
}

/// The default options: k 10, beam 20, no exclusion, no pruning, no abstention, ranked by
/// score, beta 0.5.
#[unsafe(no_mangle)]
pub extern "C" fn ugr_options_default() -> ugr_options {
    let d = SearchOptions::default();
    ugr_options {
        struct_size: size_of::<ugr_options>(),
        k: d.top_k,
        beam: d.beam,
        exclude_history: 0,
        pruning: ugr_pruning::Off as u32,
        prune_margin: 3.0,
        prune_min_margin: 2.0,
        prune_max_margin: 6.0,
        prune_levels: 1,
        min_confidence: 0.0,
        rank_by: ugr_rank_by::Score as u32,
        beta: d.beta,
    }
}

fn search_options(o: &ugr_options) -> Result<SearchOptions, Failure> {
    let pruning = match o.pruning {
        0 => Pruning::Off,
        1 => Pruning::Fixed {
            margin: o.prune_margin,
        },
        2 => Pruning::Adaptive {
            min_margin: o.prune_min_margin,
            max_margin: o.prune_max_margin,
            levels: u8::try_from(o.prune_levels).unwrap_or(u8::MAX),
        },
        p => return Err(Failure::invalid(format!("unknown pruning kind {p}"))),
    };
    let rank_by = match o.rank_by {
        0 => RankBy::Score,
        1 => RankBy::Hybrid,
        r => return Err(Failure::invalid(format!("unknown rank_by {r}"))),
    };
    // `contains` is false for NaN too: -1, -inf, 1.5 and NaN are all out of range.
    if !(0.0..=1.0).contains(&o.min_confidence) {
        return Err(Failure::invalid(format!(
            "`min_confidence` {} is outside [0, 1]",
            o.min_confidence
        )));
    }
    let opts = SearchOptions {
        beam: o.beam,
        top_k: o.k,
        exclude_history: o.exclude_history != 0,
        pruning,
        min_confidence: (o.min_confidence > 0.0).then_some(o.min_confidence),
        rank_by,
        beta: o.beta,
        ..SearchOptions::default()
    };
    opts.validate().map_err(|e| Failure::recommending(&e))?;
    Ok(opts)
}

/// The size of the first `ugr_options` with a `struct_size` (everything up to `beta`): the
/// smallest `struct_size` accepted, whatever is appended later.
const OPTIONS_MIN_SIZE: usize = core::mem::offset_of!(ugr_options, beta) + size_of::<f32>();

/// Options from a possibly NULL pointer (NULL = defaults).
///
/// # Safety
/// A non-NULL `options` points to a `ugr_options` of `struct_size` readable bytes.
pub(crate) unsafe fn read_options(options: *const ugr_options) -> Result<SearchOptions, Failure> {
    if options.is_null() {
        return search_options(&ugr_options_default());
    }
    // SAFETY: non-NULL, and by contract `struct_size` bytes are readable; the struct is
    // plain old data.
    let o = unsafe { read_sized(options, ugr_options_default(), OPTIONS_MIN_SIZE, "ugr_options")? };
    search_options(&o)
}

/// A batch's failure; an unknown item is attributed to the first user whose history holds
/// it (searched only on this error path: the search itself validates every history).
pub(crate) fn batch_failure(e: &Error, first_user: usize, histories: &[Vec<ItemId>]) -> Failure {
    let mut failure = Failure::recommending(e);
    if let Error::UnknownItem(item) = e
        && let Some(u) = histories.iter().position(|h| h.contains(item))
    {
        failure.message = format!("user {}: {}", first_user + u, failure.message);
    }
    failure
}

/// Recommends up to K items for one user.
///
/// - `history`, `history_len`: the user's item ids, oldest first (most recent last).
///   `(NULL, 0)` is an empty history (a cold-start user). Histories longer than the model
///   reads are truncated to the most recent items (see `ugr_engine_info`), but every item
///   counts for `exclude_history`. An id outside the catalog gives `UGR_STATUS_UNKNOWN_ITEM`.
/// - `options`: NULL for the defaults.
/// - `out`, `out_capacity`: a caller-owned array of at least `options->k` entries, else
///   `UGR_STATUS_BUFFER_TOO_SMALL` (nothing written).
/// - `*out_len` receives the number of items written (best first): K, or fewer when the
///   catalog (less the excluded items) is smaller or `min_confidence` dropped some. It is set
///   to 0 on failure.
///
/// libugr keeps no pointer to any argument after returning.
///
/// # Safety
/// `engine` is NULL or a live engine; `history` is NULL or holds `history_len` ids;
/// `options` is NULL or a valid struct; `out` is NULL or has `out_capacity` writable entries;
/// `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_recommend(
    engine: *const ugr_engine,
    history: *const u32,
    history_len: usize,
    options: *const ugr_options,
    out: *mut ugr_recommendation,
    out_capacity: usize,
    out_len: *mut usize,
) -> ugr_status {
    // SAFETY: the same contract, and no rules.
    unsafe {
        ugr_recommend_constrained(
            engine,
            history,
            history_len,
            std::ptr::null(),
            options,
            out,
            out_capacity,
            out_len,
        )
    }
}

/// Users searched together inside `ugr_recommend_batch` (bounds its scratch memory).
pub(crate) const BATCH_CHUNK: usize = 32;

/// Recommends up to K items for each of `n_users` users in one call (batched through the
/// model, usually faster than one call per user). Results equal the single-user calls up
/// to float rounding: the model runs at another batch size, so scores can differ in the
/// last bits (about 1e-6) and exactly tied items can swap places.
///
/// - Histories in CSR layout: user `u`'s history is `items[offsets[u] .. offsets[u + 1]]`;
///   `offsets` has `n_users + 1` non-decreasing entries and `items` holds `offsets[n_users]`
///   ids (`offsets[0]` may be non-zero). `n_users == 0` is a no-op (both may be NULL then).
/// - `out`: caller-owned, at least `n_users * k` entries; user `u`'s results start at
///   `out[u * k]` and `out_lens[u]` (caller-owned, `n_users` entries) says how many there are.
/// - On any failure no user's results are valid and every `out_lens` entry is 0; an unknown
///   item is reported with its user's index in `ugr_last_error()`.
///
/// # Safety
/// `engine` is NULL or live; `offsets` is NULL or holds `n_users + 1` values; `items` is NULL
/// or holds `offsets[n_users]` ids; `options` is NULL or valid; `out` is NULL or has
/// `out_capacity` writable entries; `out_lens` is NULL or has `n_users` writable entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_recommend_batch(
    engine: *const ugr_engine,
    items: *const u32,
    offsets: *const usize,
    n_users: usize,
    options: *const ugr_options,
    out: *mut ugr_recommendation,
    out_capacity: usize,
    out_lens: *mut usize,
) -> ugr_status {
    // SAFETY: the same contract, and no rules.
    unsafe {
        ugr_recommend_batch_constrained(
            engine,
            items,
            offsets,
            n_users,
            std::ptr::null(),
            0,
            options,
            out,
            out_capacity,
            out_lens,
        )
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

const _: () = assert!(MAX_WIDTH == 65536, "the docs above say 65536");
