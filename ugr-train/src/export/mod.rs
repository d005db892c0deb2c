//! `ugr export`: a trained run -> one artifact (`model.ugr`) holding the catalog, the trie,
//! item titles, the calibration map (when the run has one), the ONNX graphs and the weight
//! section that ugr-core's native backend runs (`ugr_core::native::weights`).

pub mod graphs;
pub mod onnx;
pub mod onnx_dir;

use anyhow::{Context, Result};
use ugr_core::contract::{CONTRACT_FORMAT, ModelContract};
use ugr_core::native::{WEIGHTS_BLOB, WEIGHTS_FORMAT, WeightFile, WeightTensor, WeightType};
use ugr_core::{Blob, Bundle, Calibration};

use self::graphs::Weights;
use crate::data::Dataset;
use crate::model::ModelConfig;
use crate::run::LoadedRun;

/// Export options.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportOptions {
    /// Store weights as f16 (halves the file; compute stays f32).
    pub f16: bool,
    /// The item-fusion weight fitted for the run (`fusion.json`), written into the contract.
    pub item_weight: Option<f32>,
    /// Leave out the confidence graph of a model that has one, so that the engine reports
    /// the beam posterior: what a run whose `confidence.json` chose the posterior exports.
    pub posterior_confidence: bool,
}

/// The contract describing an exported model.
pub fn contract(cfg: &ModelConfig, opts: ExportOptions) -> ModelContract {
    let item_head = cfg.has_item_head();
    ModelContract {
        format: CONTRACT_FORMAT.into(),
        codebooks: cfg.codebooks.clone(),
        d_model: cfg.d_model as u32,
        heads: cfg.heads as u32,
        head_layers: cfg.head_layers as u32,
        max_history: cfg.max_history as u32,
        history: cfg.history_layout().positions,
        sid_embeddings: cfg.sid_embeddings as u32,
        confidence: cfg.confidence && !opts.posterior_confidence,
        normalization: cfg.trained_normalization(),
        weights: if opts.f16 { "f16".into() } else { "f32".into() },
        encoder_layers: cfg.layers as u32,
        d_ff: cfg.d_ff as u32,
        item_head,
        item_weight: opts.item_weight.filter(|_| item_head),
    }
}

/// Builds the ONNX graphs of a loaded run.
pub fn graphs(run: &LoadedRun, opts: ExportOptions) -> Result<Vec<Blob>> {
    let cfg = &run.info.model;
    let vocab = cfg.vocab()?;
    let data = run
        .varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned var map"))?;
    let w = Weights::new(&data);
    let mut out = vec![Blob {
        name: "prefill".into(),
        bytes: graphs::prefill(&w, cfg, &vocab, opts.f16).context("exporting prefill")?,
    }];
    for level in 1..cfg.levels() {
        out.push(Blob {
            name: format!("step_{level}"),
            bytes: graphs::step(&w, cfg, &vocab, level, opts.f16)
                .with_context(|| format!("exporting step_{level}"))?,
        });
    }
    if cfg.confidence && !opts.posterior_confidence {
        out.push(Blob {
            name: "confidence".into(),
            bytes: graphs::confidence(&w, cfg, opts.f16).context("exporting confidence")?,
        });
    }
    out.push(Blob {
        name: WEIGHTS_BLOB.into(),
        bytes: weight_section(&data, opts)?,
    });
    Ok(out)
}

/// The weight section: every parameter of the run by checkpoint name (sorted), f32 or f16.
fn weight_section(
    data: &std::collections::HashMap<String, candle_core::Var>,
    opts: ExportOptions,
) -> Result<Vec<u8>> {
    let dtype = if opts.f16 {
        WeightType::F16
    } else {
        WeightType::F32
    };
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let t = data[name].as_tensor();
        let dims: Vec<u32> = t.dims().iter().map(|&d| d as u32).collect();
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        tensors.push(WeightTensor::from_f32(name, &dims, &values, dtype));
    }
    let file = WeightFile {
        format: WEIGHTS_FORMAT.into(),
        tensors,
    };
    file.to_bytes().context("encoding the weight section")
}

/// The artifact of a run: its dataset's catalog (the one it was trained with), titles,
/// the calibration map if given, and the graphs.
pub fn bundle(
    run: &LoadedRun,
    ds: &Dataset,
    calibration: Option<Calibration>,
    opts: ExportOptions,
) -> Result<Bundle> {
    let contract = contract(&run.info.model, opts);
    if contract.codebooks != ds.catalog.vocab().codebook_sizes() {
        anyhow::bail!("the run's codebooks do not match the dataset's SID index");
    }
    let titles = (!ds.titles.is_empty()).then(|| {
        ds.catalog
            .item_ids()
            .iter()
            .map(|i| ds.titles.get(i).cloned().unwrap_or_default())
            .collect()
    });
    Ok(Bundle {
        catalog: ds.catalog.clone(),
        calibration,
        titles,
        model: Some(ugr_core::ModelSection {
            config_json: serde_json::to_string(&contract)?,
            graphs: graphs(run, opts)?,
        }),
    })
}

/// The calibration map a run saved (`calibration.json`, written at the end of SFT and of the
/// RL stage, and by `ugr train calibrate`), if any: the map of the signal the run reports.
pub fn run_calibration(dir: &std::path::Path) -> Result<Option<Calibration>> {
    let path = dir.join(crate::eval::calibrate::MAP_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let c: Calibration = crate::run::read_json(&path)?;
    c.validate()?;
    Ok(Some(c))
}
