//! `ugr bench scale`: the engine on synthetic catalogs of 100k to 10M items.
//!
//! A synthetic artifact takes a real model's architecture and weights (the donor: Beauty's
//! for the published table) and replaces what grows with the catalog: the catalog itself
//! (`items` unique SIDs drawn uniformly in the donor's codebooks), the SID embeddings and
//! the item head (uniform random rows of the donor's scale). Random weights do not
//! recommend anything sensible; they cost what trained ones cost, which is what is
//! measured. The artifact holds the native weight section only (no ONNX graphs: at 10M
//! items they would double a file of several GB) and is written as a stream, one table row
//! block at a time, so that writing a 5 GB artifact does not need 5 GB of memory.
//!
//! [`measure`] opens one artifact in the calling process and reports the open time, the
//! resident memory after opening and at its peak (Linux `/proc/self/status`), and the
//! single-request latency; the CLI runs it in a fresh process per artifact so that one
//! size's memory does not count in the next.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use ugr_core::artifact::{FORMAT_VERSION, HEADER_LEN, MAGIC};
use ugr_core::contract::ModelContract;
use ugr_core::native::{WEIGHTS_BLOB, WeightFile, WeightTensor, WeightType};
use ugr_core::{Blob, Bundle, CatalogBuilder, Engine, ItemId, ModelSection, SearchOptions, Sid};

/// The catalog-sized tensors a synthetic artifact replaces.
const SID_EMB: &str = "sid_emb.weight";
const ITEM_OUT: &str = "item_out.weight";
const ITEM_BIAS: &str = "item_out.bias";

/// What [`write_synthetic`] wrote.
#[derive(Debug, Serialize)]
pub struct Written {
    /// Items (= SIDs: one item per SID).
    pub items: usize,
    /// Artifact bytes.
    pub bytes: u64,
    /// Seconds to write it.
    pub seconds: f64,
}

/// Writes a synthetic artifact of `items` items with `donor`'s architecture (see the module
/// docs); `dtype` is the storage of the catalog-sized tables (the donor's other tensors
/// keep theirs).
pub fn write_synthetic(
    donor: &Path,
    items: usize,
    dtype: WeightType,
    out: &Path,
    seed: u64,
) -> Result<Written> {
    let t = Instant::now();
    let bytes = std::fs::read(donor).with_context(|| format!("reading {}", donor.display()))?;
    let bundle = Bundle::from_bytes(&bytes).with_context(|| format!("decoding {}", donor.display()))?;
    let section = bundle.model.as_ref().context("the donor artifact has no model")?;
    let mut contract: ModelContract = serde_json::from_str(&section.config_json)?;
    ensure!(contract.item_head, "the donor model has no item head");
    let weights = section
        .graphs
        .iter()
        .find(|b| b.name == WEIGHTS_BLOB)
        .context("the donor artifact has no native weight section")?;
    let file = WeightFile::from_bytes(&weights.bytes)?;
    let d = contract.d_model as usize;
    let scale = file
        .get(ITEM_OUT)
        .or_else(|| file.get(SID_EMB))
        .and_then(WeightTensor::to_f32)
        .map_or(0.05, |v| {
            (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt() * 3f32.sqrt()
        });

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let vocab = *bundle.catalog.vocab();
    let catalog = synthetic_catalog(vocab, items, &mut rng)?;
    let s = catalog.sid_count();
    contract.sid_embeddings = (s + 1) as u32;
    let config_json = serde_json::to_string(&contract)?;

    // The weight file: the donor's tensors, then the three catalog-sized ones (streamed).
    let kept: Vec<&WeightTensor> = file
        .tensors
        .iter()
        .filter(|t| ![SID_EMB, ITEM_OUT, ITEM_BIAS].contains(&t.name.as_str()))
        .collect();
    let streamed = [(SID_EMB, s + 1, d), (ITEM_OUT, s, d), (ITEM_BIAS, s, 1)];
    let width = match dtype {
        WeightType::F32 => 4,
        WeightType::F16 => 2,
    };
    let mut weight_parts = Vec::new(); // postcard bytes of everything but the streamed data
    weight_parts.push(postcard::to_allocvec(&(
        file.format.as_str(),
        kept.len() + streamed.len(),
    ))?);
    for t in &kept {
        weight_parts.push(postcard::to_allocvec(t)?);
    }
    let heads: Vec<Vec<u8>> = streamed
        .iter()
        .map(|&(name, rows, cols)| tensor_head(name, rows, cols, dtype))
        .collect::<Result<_>>()?;
    let weights_len: u64 = weight_parts.iter().map(|p| p.len() as u64).sum::<u64>()
        + heads.iter().map(|h| h.len() as u64).sum::<u64>()
        + streamed
            .iter()
            .map(|&(_, rows, cols)| (rows * cols * width) as u64)
            .sum::<u64>();

    // The payload: the bundle without its model (model: None is its last byte), then the
    // model section (config, one blob: the weight file).
    let mut head = postcard::to_allocvec(&Bundle {
        catalog,
        calibration: bundle.calibration.clone(),
        titles: None,
        model: None,
    })?;
    ensure!(head.pop() == Some(0), "a bundle without a model ends with None");
    head.push(1);
    let mut section_head = postcard::to_allocvec(&ModelSection {
        config_json,
        graphs: Vec::new(),
    })?;
    ensure!(
        section_head.pop() == Some(0),
        "a section without graphs ends with an empty list"
    );
    section_head.extend(postcard::to_allocvec(&1usize)?);
    let mut blob_head = postcard::to_allocvec(&Blob {
        name: WEIGHTS_BLOB.into(),
        bytes: Vec::new(),
    })?;
    ensure!(blob_head.pop() == Some(0), "an empty blob ends with its length 0");
    blob_head.extend(postcard::to_allocvec(&(weights_len as usize))?);
    let payload_len = (head.len() + section_head.len() + blob_head.len()) as u64 + weights_len;

    let mut out_file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = Hashed::new(std::io::BufWriter::with_capacity(1 << 22, &mut out_file));
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&payload_len.to_le_bytes());
    w.write_all(&header)?;
    w.inner.write_all(&[0; 4])?; // the checksum, written last
    for part in [&head, &section_head, &blob_head] {
        w.write_all(part)?;
    }
    for part in &weight_parts {
        w.write_all(part)?;
    }
    for ((_, rows, cols), h) in streamed.iter().zip(&heads) {
        w.write_all(h)?;
        let mut block = Vec::with_capacity(4096 * cols * width);
        let mut left = rows * cols;
        while left > 0 {
            block.clear();
            for _ in 0..left.min(4096 * cols) {
                let v = scale * (2.0 * rng.random::<f32>() - 1.0);
                match dtype {
                    WeightType::F32 => block.extend_from_slice(&v.to_le_bytes()),
                    WeightType::F16 => block.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
                }
            }
            left -= block.len() / width;
            w.write_all(&block)?;
        }
    }
    let crc = w.finish()?;
    out_file.seek(SeekFrom::Start(24))?;
    out_file.write_all(&crc.to_le_bytes())?;
    out_file.sync_all()?;
    Ok(Written {
        items: s,
        bytes: HEADER_LEN as u64 + payload_len,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// The postcard bytes of a tensor's name, shape, type and data length (its data follows).
fn tensor_head(name: &str, rows: usize, cols: usize, dtype: WeightType) -> Result<Vec<u8>> {
    let dims = if cols == 1 {
        vec![rows as u32]
    } else {
        vec![rows as u32, cols as u32]
    };
    let mut head = postcard::to_allocvec(&WeightTensor {
        name: name.into(),
        dims,
        dtype,
        data: Vec::new(),
    })?;
    ensure!(head.pop() == Some(0), "an empty tensor ends with its length 0");
    let width = match dtype {
        WeightType::F32 => 4,
        WeightType::F16 => 2,
    };
    head.extend(postcard::to_allocvec(&(rows * cols * width))?);
    Ok(head)
}

/// `items` distinct SIDs drawn uniformly, one item each (ids 0..).
fn synthetic_catalog(
    vocab: ugr_core::SidVocab,
    items: usize,
    rng: &mut impl Rng,
) -> Result<ugr_core::Catalog> {
    let sizes = vocab.codebook_sizes();
    let mut sids: Vec<Vec<u16>> = Vec::with_capacity(items + items / 16);
    while sids.len() < items {
        let need = items - sids.len();
        sids.extend(
            (0..need + need / 64 + 16)
                .map(|_| sizes.iter().map(|&n| rng.random_range(0..n) as u16).collect()),
        );
        sids.sort_unstable();
        sids.dedup();
    }
    sids.truncate(items);
    let mut b = CatalogBuilder::new(vocab);
    for (i, codes) in sids.iter().enumerate() {
        b.push(ItemId::new(i as u32), Sid::new(codes)?)?;
    }
    Ok(b.build()?)
}

/// A writer that hashes (CRC-32, the artifact's) what it writes.
struct Hashed<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Hashed<W> {
    fn new(inner: W) -> Self {
        Hashed {
            inner,
            crc: crc32fast::Hasher::new(),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.inner.write_all(bytes)
    }

    fn finish(mut self) -> std::io::Result<u32> {
        self.inner.flush()?;
        Ok(self.crc.finalize())
    }
}

/// One artifact measured in this process (see the module docs).
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Measured {
    /// Items in the catalog.
    pub items: usize,
    /// Artifact bytes.
    pub artifact_bytes: u64,
    /// Seconds to open the engine.
    pub open_s: f64,
    /// Resident MB before opening, after, and at the peak (Linux; 0 elsewhere).
    pub rss_before_mb: f64,
    /// Resident MB once open.
    pub rss_open_mb: f64,
    /// Peak resident MB of the process, after the requests.
    pub rss_peak_mb: f64,
    /// Single-request latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Requests timed.
    pub requests: usize,
}

/// Opens `path`, then times `requests` single requests (histories of 1..20 random catalog
/// items, beam 20, top 10, the engine's defaults otherwise) after 5 untimed ones.
pub fn measure(path: &Path, requests: usize, seed: u64) -> Result<Measured> {
    let rss_before_mb = status_mb("VmRSS");
    let t = Instant::now();
    let engine = Engine::open(path).with_context(|| format!("opening {}", path.display()))?;
    let open_s = t.elapsed().as_secs_f64();
    let rss_open_mb = status_mb("VmRSS");
    let catalog = engine.catalog();
    let ids = catalog.item_ids();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let histories: Vec<Vec<ItemId>> = (0..requests + 5)
        .map(|_| {
            let n = rng.random_range(1..=20);
            (0..n).map(|_| ids[rng.random_range(0..ids.len())]).collect()
        })
        .collect();
    let opts = SearchOptions::default();
    let mut ms = Vec::with_capacity(requests);
    for (i, h) in histories.iter().enumerate() {
        let t = Instant::now();
        let r = engine.recommend(h, &opts)?;
        ensure!(!r.items.is_empty(), "a request returned nothing");
        if i >= 5 {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Ok(Measured {
        items: catalog.len(),
        artifact_bytes: std::fs::metadata(path)?.len(),
        open_s,
        rss_before_mb,
        rss_open_mb,
        rss_peak_mb: status_mb("VmHWM"),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        requests,
    })
}

/// A `kB` line of `/proc/self/status` in MB (0 where there is none).
pub fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1000.0)
}
