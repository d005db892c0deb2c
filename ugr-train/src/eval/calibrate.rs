//! Which confidence a run reports, and its calibration map (`ugr train calibrate`; the RL
//! stage runs it at its end): `confidence.json` and `calibration.json` of a run.
//!
//! Two signals can say how sure a recommendation is: the beam posterior (every model) and
//! the learned confidence (models with confidence tokens, after the RL stage). On validation
//! rows, through the serving search (fused at the run's `fusion.json` weight), each signal
//! gets an isotonic map ([`ConfidenceCollector::fit_calibration`]) and its AUROC(hit@1): how
//! well the top-1 item's raw confidence ranks the users whose top-1 is the target above the
//! others. A monotone map cannot change that ranking (ties aside), and it makes the ECE of
//! any signal small on the rows it was fitted on, so the AUROC is what tells the signals
//! apart: the higher one is chosen, a tie goes to the posterior (no extra model step).
//!
//! The chosen signal's map is `calibration.json`, which `ugr export` puts into the
//! artifact; a run that chose the posterior is exported without its confidence graph, so
//! the engine reports exactly the signal that was chosen. `ugr eval` reports the chosen
//! signal and, for comparison, the other one through its own map.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use ugr_core::{Calibration, Catalog, SearchOptions};

use super::confidence::{ConfidenceCollector, Signal};
use super::search_rows;
use crate::data::Example;
use crate::model::{CandleModel, SidTransformer};

/// The file in a run directory.
pub const FILE: &str = "confidence.json";

/// The calibration map of the chosen signal (what the artifact carries).
pub const MAP_FILE: &str = "calibration.json";

/// One signal's validation figures and map.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignalFit {
    /// The signal.
    pub signal: Signal,
    /// AUROC of the top-1 item's raw confidence for hit@1.
    pub auroc_hit1: Option<f64>,
    /// The same for hit@10.
    pub auroc_hit10: Option<f64>,
    /// NDCG@10 of the 50% most confident users over all users.
    pub ndcg10_confident_half_over_all: f64,
    /// Its isotonic map (fitted on every top-10 item of the rows against "is the target").
    pub map: Calibration,
}

/// `confidence.json`: the chosen signal and how it was chosen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfidenceChoice {
    /// The signal the run reports.
    pub source: Signal,
    /// Validation rows used.
    pub rows: usize,
    /// Beam width of the search.
    pub beam: usize,
    /// Item-fusion weight of the search (`None`: generative only).
    pub item_weight: Option<f32>,
    /// Every signal measured, the posterior first.
    pub signals: Vec<SignalFit>,
}

impl ConfidenceChoice {
    /// One printable line per signal measured, the chosen one marked.
    pub fn lines(&self) -> Vec<String> {
        self.signals
            .iter()
            .map(|s| {
                format!(
                    "confidence {:?}: validation AUROC hit@1 {:.4}, hit@10 {:.4}{}",
                    s.signal,
                    s.auroc_hit1.unwrap_or(f64::NAN),
                    s.auroc_hit10.unwrap_or(f64::NAN),
                    if s.signal == self.source { " (chosen)" } else { "" }
                )
            })
            .collect()
    }

    /// The map fitted on `signal`, when it was measured.
    pub fn map(&self, signal: Signal) -> Option<&Calibration> {
        self.signals.iter().find(|s| s.signal == signal).map(|s| &s.map)
    }
}

/// Measures every signal `model` has on `rows` (validation examples) and chooses one (see the
/// module docs).
pub fn fit(
    model: &SidTransformer,
    catalog: &Catalog,
    rows: &[Example],
    beam: usize,
    batch: usize,
    item_weight: Option<f32>,
) -> Result<ConfidenceChoice> {
    let decoder = CandleModel::new(model, catalog).with_item_weight(item_weight);
    let opts = SearchOptions {
        learned_confidence: true,
        ..super::eval_options(beam, model.config().normalization())
    };
    let mut signals = vec![Signal::Posterior];
    if model.config().confidence {
        signals.push(Signal::Learned);
    }
    let mut collectors: Vec<ConfidenceCollector> = signals
        .iter()
        .map(|&s| ConfidenceCollector::new(s, None, opts.beta))
        .collect();
    search_rows(
        &decoder,
        catalog,
        None,
        rows,
        &opts,
        batch,
        |_| {},
        |e, r| {
            for c in &mut collectors {
                c.add(e, r);
            }
        },
    )?;
    let mut fits = Vec::with_capacity(signals.len());
    for (&signal, c) in signals.iter().zip(&collectors) {
        let report = c.report();
        fits.push(SignalFit {
            signal,
            auroc_hit1: report.auroc_hit1,
            auroc_hit10: report.auroc_hit10,
            ndcg10_confident_half_over_all: report.ndcg10_confident_half_over_all,
            map: c.fit_calibration()?,
        });
    }
    let auroc = |s: &SignalFit| s.auroc_hit1.unwrap_or(f64::NEG_INFINITY);
    let source = fits
        .iter()
        .fold(&fits[0], |best, s| if auroc(s) > auroc(best) { s } else { best })
        .signal;
    Ok(ConfidenceChoice {
        source,
        rows: rows.len(),
        beam,
        item_weight,
        signals: fits,
    })
}

/// Writes `confidence.json` and the chosen map as `calibration.json` into a run directory.
pub fn write(run: &Path, choice: &ConfidenceChoice) -> Result<()> {
    let map = choice
        .map(choice.source)
        .ok_or_else(|| anyhow::anyhow!("the chosen signal has no map"))?;
    crate::run::write_json(&run.join(MAP_FILE), map)?;
    crate::run::write_json(&run.join(FILE), choice)
}

/// The choice of a run directory, when it has one.
pub fn read(run: &Path) -> Result<Option<ConfidenceChoice>> {
    let path = run.join(FILE);
    if !path.exists() {
        return Ok(None);
    }
    let c: ConfidenceChoice = crate::run::read_json(&path)?;
    for s in &c.signals {
        s.map.validate()?;
    }
    anyhow::ensure!(
        c.map(c.source).is_some(),
        "{}: the chosen signal {:?} was not measured",
        path.display(),
        c.source
    );
    Ok(Some(c))
}

/// The signal a run reports: its choice, else the learned confidence where the model has
/// it (a run from before `confidence.json`), else the posterior.
pub fn source(run: &Path, has_confidence: bool) -> Result<Signal> {
    Ok(match read(run)? {
        Some(c) => c.source,
        None if has_confidence => Signal::Learned,
        None => Signal::Posterior,
    })
}
