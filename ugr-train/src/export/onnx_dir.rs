//! `ugr export --onnx DIR`: an artifact's model as plain files, for engineers who serve it
//! in their own runtime (onnxruntime, TensorRT, Triton).
//!
//! The directory holds the graphs exactly as the artifact stores them (`prefill.onnx`,
//! `step_<l>.onnx`, `confidence.onnx` when the model has one), the model contract
//! (`contract.json`), the model's SID table (`sids.tsv`: the columns of `item_logits`, in
//! order), the served catalog (`catalog.tsv`: item, SID, title), the calibration map when
//! the artifact has one, and `reference/`: inputs and the engine's outputs for a few
//! histories, so that another runtime can check itself against ugr (see [`README`]).

use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray_npy::WriteNpyExt;
use serde_json::json;
use ugr_core::onnx::feeds::{self, Feed};
use ugr_core::{Engine, ItemId, Sid, SidModel, Special, Step, TokenId};

/// File names inside the directory (one place for each).
pub const CONTRACT_FILE: &str = "contract.json";
/// The model's SID table.
pub const SIDS_FILE: &str = "sids.tsv";
/// The served catalog.
pub const CATALOG_FILE: &str = "catalog.tsv";
/// The calibration map (when the artifact has one).
pub const CALIBRATION_FILE: &str = "calibration.json";
/// The reference inputs and outputs.
pub const REFERENCE_DIR: &str = "reference";
/// The manifest of the reference.
pub const REFERENCE_MANIFEST: &str = "reference.json";

/// What `README.md` of the directory says.
pub const README: &str = "\
# A ugr model as ONNX files

Written by `ugr export --onnx`. The graphs (IR 8, opset 17, standard operators) are the
ones the artifact holds; `contract.json` is the model contract and docs/serving.md (in the
ugr repository) the search a runtime must run around them: normalisation, the trie of
`catalog.tsv`, item fusion, confidence.

- `prefill.onnx`, `step_<l>.onnx`, `confidence.onnx` (when the model has one)
- `contract.json`: codebooks, heads, history layout, item head and its fusion weight
- `sids.tsv`: the model's SIDs; row i is column i of `item_logits`
- `catalog.tsv`: every served item with its SID and title
- `calibration.json`: the confidence calibration map (when the artifact has one)
- `reference/`: for a few histories, every graph's inputs and the ugr engine's outputs as
  `.npy` files; `reference.json` lists them in order. A step's `past.*` inputs are the
  previous graph's `present.*` outputs (one row per history, no beam re-ordering).
";

/// What was written.
#[derive(Debug)]
pub struct OnnxDir {
    /// Graph files written.
    pub graphs: Vec<String>,
    /// Reference histories.
    pub reference_rows: usize,
}

/// Writes `engine`'s model (opened from `artifact`) as plain files under `dir`.
pub fn write(engine: &Engine, artifact: &ugr_core::Bundle, dir: &Path) -> Result<OnnxDir> {
    let section = artifact
        .model
        .as_ref()
        .context("the artifact has no model section")?;
    std::fs::create_dir_all(dir.join(REFERENCE_DIR))
        .with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    let mut graphs = Vec::new();
    for blob in &section.graphs {
        if blob.name == ugr_core::native::WEIGHTS_BLOB || blob.name == ugr_core::served::MODEL_SIDS_BLOB {
            continue;
        }
        let name = format!("{}.onnx", blob.name);
        write(&name, &blob.bytes)?;
        graphs.push(name);
    }
    if graphs.is_empty() {
        bail!("the artifact holds no ONNX graphs");
    }
    let contract: serde_json::Value = serde_json::from_str(&section.config_json)?;
    write(CONTRACT_FILE, serde_json::to_string_pretty(&contract)?.as_bytes())?;
    write("README.md", README.as_bytes())?;
    let model = engine.model_catalog();
    let mut sids = String::from("sid_index\tsid\tcodes\n");
    for i in 0..model.sid_count() as u32 {
        let sid = model.sid(i);
        sids.push_str(&format!("{i}\t{sid}\t{}\n", codes(&sid)));
    }
    write(SIDS_FILE, sids.as_bytes())?;
    let served = engine.served();
    let mut catalog = String::from("item\tsid\tcodes\ttitle\n");
    for &item in served.catalog().item_ids() {
        let sid = served.catalog().sid_of(item)?;
        let title = served.title(item).unwrap_or("").replace(['\t', '\n'], " ");
        catalog.push_str(&format!("{}\t{sid}\t{}\t{title}\n", item.as_u32(), codes(&sid)));
    }
    write(CATALOG_FILE, catalog.as_bytes())?;
    if let Some(cal) = &artifact.calibration {
        write(CALIBRATION_FILE, serde_json::to_string_pretty(cal)?.as_bytes())?;
    }
    let reference_rows = reference(engine, &dir.join(REFERENCE_DIR))?;
    Ok(OnnxDir {
        graphs,
        reference_rows,
    })
}

fn codes(sid: &Sid) -> String {
    sid.codes()
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reference histories: empty, one item, and longer than the model reads (truncation).
fn reference_histories(engine: &Engine, max_history: usize) -> Vec<Vec<ItemId>> {
    let items = engine.model_catalog().item_ids();
    let pick = |i: usize| items[(i * 7919) % items.len()];
    vec![
        Vec::new(),
        vec![pick(1)],
        (0..max_history + 2).map(|i| pick(i + 2)).collect(),
    ]
}

/// Runs the engine's model through prefill, every step and the confidence graph for the
/// reference histories, writing inputs and outputs; returns the rows.
fn reference(engine: &Engine, dir: &Path) -> Result<usize> {
    let model = engine.model();
    let contract = model.contract();
    let catalog = engine.model_catalog();
    let vocab = catalog.vocab();
    let histories = reference_histories(engine, contract.max_history as usize);
    let sid_histories: Vec<Vec<Sid>> = histories
        .iter()
        .map(|h| {
            h.iter()
                .map(|&i| catalog.sid_of(i))
                .collect::<ugr_core::Result<_>>()
        })
        .collect::<ugr_core::Result<_>>()?;
    let refs: Vec<&[Sid]> = sid_histories.iter().map(Vec::as_slice).collect();
    let rows = refs.len();
    // The path each row follows: the SID of one catalog entry per row.
    let targets: Vec<Sid> = (0..rows)
        .map(|r| catalog.sid(((r * 131) % catalog.sid_count()) as u32))
        .collect();

    let mut entries = Vec::new();
    let mut cache = model.new_cache();
    let first = vocab.level_tokens(0);
    let inputs = feeds::prefill(contract, catalog, &refs, first.clone())?;
    model.prefill(&mut cache, &refs, first)?;
    let mut outputs = vec![(
        "logits",
        vec![rows, vocab.codebook_size(0) as usize],
        model.logits(&cache).to_vec(),
    )];
    if let Some(items) = model.item_logits(&cache) {
        outputs.push(("item_logits", vec![rows, catalog.sid_count()], items.to_vec()));
    }
    entries.push(entry(dir, "prefill", &inputs, &outputs)?);

    let parents: Vec<u32> = (0..rows as u32).collect();
    for level in 1..vocab.levels() {
        let tokens: Vec<TokenId> = targets
            .iter()
            .map(|s| vocab.token(level - 1, s.codes()[level - 1]))
            .collect::<ugr_core::Result<_>>()?;
        let step = Step {
            parents: &parents,
            tokens: &tokens,
            tokens_per_row: 1,
            logits_for: vocab.level_tokens(level),
        };
        let (graph, feed) = feeds::step(contract, catalog, level, &step)?;
        model.step(&mut cache, &step)?;
        let size = vocab.codebook_size(level) as usize;
        let out = [("logits", vec![rows, size], model.logits(&cache).to_vec())];
        entries.push(entry(dir, &graph.name(), &[feed], &out)?);
    }
    if model.has_confidence() {
        let last = vocab.levels() - 1;
        let mut tokens = Vec::with_capacity(rows * 2);
        for s in &targets {
            tokens.push(vocab.token(last, s.codes()[last])?);
            tokens.push(Special::ConfQ.token());
        }
        let lo = Special::CLow.token().as_u32();
        let step = Step {
            parents: &parents,
            tokens: &tokens,
            tokens_per_row: 2,
            logits_for: lo..lo + 2,
        };
        let (graph, feed) = feeds::step(contract, catalog, vocab.levels(), &step)?;
        model.step(&mut cache, &step)?;
        let out = [("logits", vec![rows, 2], model.logits(&cache).to_vec())];
        entries.push(entry(dir, &graph.name(), &[feed], &out)?);
    }
    let manifest = json!({
        "histories": histories.iter().map(|h| h.iter().map(|i| i.as_u32()).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "paths": targets.iter().map(Sid::to_string).collect::<Vec<_>>(),
        "graphs": entries,
        "past": "each step's past.<i>.{k,v} inputs are the previous graph's present.<i>.{k,v} outputs",
    });
    std::fs::write(
        dir.join(REFERENCE_MANIFEST),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(rows)
}

/// Writes one graph's integer inputs and float outputs; returns its manifest entry.
fn entry(
    dir: &Path,
    graph: &str,
    inputs: &[Feed],
    outputs: &[(&str, Vec<usize>, Vec<f32>)],
) -> Result<serde_json::Value> {
    let mut ins = serde_json::Map::new();
    for f in inputs {
        let file = format!("{graph}.{}.npy", f.name);
        let array = ndarray::ArrayD::from_shape_vec(f.shape.clone(), f.data.clone())?;
        array.write_npy(std::fs::File::create(dir.join(&file))?)?;
        ins.insert(f.name.into(), file.into());
    }
    let mut outs = serde_json::Map::new();
    for (name, shape, data) in outputs {
        let file = format!("{graph}.{name}.npy");
        let array = ndarray::ArrayD::from_shape_vec(shape.clone(), data.clone())?;
        array.write_npy(std::fs::File::create(dir.join(&file))?)?;
        outs.insert((*name).into(), file.into());
    }
    Ok(json!({ "graph": graph, "inputs": ins, "outputs": outs }))
}
