//! The tract backend on mutated graphs: the graphs of `tests/data/tiny-model.ugr` with bytes
//! flipped, or with a node input renamed, a constant index out of range or an attribute
//! changed (the shapes of the panics and the hang that adversarial testing found in tract),
//! give a typed error or a working engine, never a panic or a hang.
#![cfg(all(feature = "onnx", feature = "native"))]

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use prost::Message as _;
use tract_onnx::pb::ModelProto;
use ugr_core::onnx::check::check_graph;
use ugr_core::{BackendChoice, Bundle, Engine, ItemId, SearchOptions};

fn tiny() -> Bundle {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny-model.ugr");
    Bundle::from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

fn graph_names(b: &Bundle) -> Vec<String> {
    let model = b.model.as_ref().unwrap();
    model
        .graphs
        .iter()
        .filter(|g| g.name != "weights")
        .map(|g| g.name.clone())
        .collect()
}

/// Opens `bundle` with tract on another thread; a hang fails the test (60 s is far above
/// any load of this model, ~0.1 s).
fn open_tract(bundle: Bundle, what: &str) -> Result<Engine, ugr_core::Error> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Engine::from_bundle_with(bundle, BackendChoice::Tract));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: opening with tract did not finish in 60 s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: opening with tract panicked"),
    }
}

/// The bytes of the graph named `graph`.
fn graph_bytes<'b>(bundle: &'b mut Bundle, graph: &str) -> &'b mut Vec<u8> {
    let blob = bundle
        .model
        .as_mut()
        .unwrap()
        .graphs
        .iter_mut()
        .find(|g| g.name == graph)
        .unwrap();
    &mut blob.bytes
}

/// `UGR_TRACT_MUTATIONS` when set, else `default`.
fn mutation_count(default: u64) -> u64 {
    std::env::var("UGR_TRACT_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A seeded xorshift generator (the mutations are reproducible).
fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn edit(bundle: &mut Bundle, graph: &str, f: impl FnOnce(&mut ModelProto)) {
    let bytes = graph_bytes(bundle, graph);
    let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
    f(&mut m);
    *bytes = m.encode_to_vec();
}

#[test]
fn exported_graphs_pass_the_check() {
    let b = tiny();
    for g in &b.model.as_ref().unwrap().graphs {
        if g.name != "weights" {
            check_graph(&g.bytes).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        }
    }
    open_tract(b, "unchanged").unwrap();
}

/// A change to a decoded graph.
type Edit = Box<dyn FnOnce(&mut ModelProto)>;

#[test]
fn structural_mutations_are_typed_errors() {
    let cases: Vec<(&str, Edit)> = vec![
        (
            "an undefined node input",
            Box::new(|m| m.graph.as_mut().unwrap().node[3].input[0] = "nowhere".into()),
        ),
        (
            "an unknown operator",
            Box::new(|m| m.graph.as_mut().unwrap().node[0].op_type = "Loop".into()),
        ),
        (
            "an axis far out of range",
            Box::new(|m| {
                let g = m.graph.as_mut().unwrap();
                let n = g
                    .node
                    .iter_mut()
                    .find(|n| n.op_type == "LayerNormalization")
                    .unwrap();
                n.attribute.iter_mut().find(|a| a.name == "axis").unwrap().i = -(1 << 40);
            }),
        ),
        (
            "an initializer shorter than its dims",
            Box::new(|m| {
                let t = &mut m.graph.as_mut().unwrap().initializer[0];
                t.dims.push(7);
            }),
        ),
    ];
    for (what, f) in cases {
        let mut b = tiny();
        edit(&mut b, "prefill", f);
        let e = open_tract(b, what)
            .err()
            .unwrap_or_else(|| panic!("{what}: opened"));
        assert!(e.to_string().contains("graph:"), "{what}: {e}");
    }
}

/// Seeded byte mutations of every graph (1-4 bytes each): a typed error or an engine that
/// answers, never a panic or a hang. `UGR_TRACT_MUTATIONS` sets the count (default 120).
#[test]
fn byte_mutations_never_panic_or_hang() {
    let count = mutation_count(120);
    let base = tiny();
    let names = graph_names(&base);
    let history = [ItemId::new(1), ItemId::new(2), ItemId::new(3)];
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let (mut opened, mut refused) = (0, 0);
    for case in 0..count {
        let mut b = base.clone();
        let graph = &names[(next() % names.len() as u64) as usize];
        let bytes = graph_bytes(&mut b, graph);
        // Graph structure sits before the weights in the exporter's graphs; bias towards it.
        let span = if next().is_multiple_of(2) {
            bytes.len().min(2048)
        } else {
            bytes.len()
        };
        for _ in 0..1 + next() % 4 {
            let at = (next() % span as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        match open_tract(b, &format!("case {case} ({graph})")) {
            Ok(engine) => {
                opened += 1;
                let _ = engine.recommend(&history, &SearchOptions::default());
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!("{count} mutated models: {opened} opened, {refused} refused with a typed error");
}

/// The tiny model as exported before the weight section existed: graphs only, so
/// [`BackendChoice::Auto`] runs it on tract.
fn without_weights() -> Bundle {
    let mut b = tiny();
    b.model.as_mut().unwrap().graphs.retain(|g| g.name != "weights");
    b
}

/// Opens `bytes` (Auto: tract, as the artifact has no weight section) and serves one request
/// and one batch on another thread. A panic or a hang fails the test; a typed error at open
/// or per request is the expected outcome for a broken graph, as is a working engine.
fn open_and_serve(bytes: Vec<u8>, what: &str) -> &'static str {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok(engine) = Engine::from_bytes(&bytes) else {
            return tx.send("refused").unwrap();
        };
        let a = [ItemId::new(1), ItemId::new(2), ItemId::new(3)];
        let b = [ItemId::new(4)];
        let opts = SearchOptions::default();
        let one = engine.recommend(&a, &opts);
        let many = engine.recommend_batch(&[&a, &b, &[]], &opts);
        // A model that failed to run must keep failing with a typed error, not panic later.
        let again = engine.recommend(&a, &opts);
        tx.send(match (one.is_ok(), many.is_ok(), again.is_ok()) {
            (true, true, true) => "served",
            _ => "failed with a typed error",
        })
        .unwrap();
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: no answer in 60 s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// Every byte of every constant that feeds a `Gather` (indices and tables), in every graph of
/// an artifact without a weight section, set to a few values: the constants pass the load-time
/// checks and drive an out-of-range gather only when the graph runs. Each case opens, serves
/// a request and a batch: a typed error or a working engine, never a panic or a hang.
#[test]
fn gather_constants_mutated_fail_at_run_time_with_typed_errors() {
    let base = without_weights();
    let names = graph_names(&base);
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for graph in &names {
        let blob = &base
            .model
            .as_ref()
            .unwrap()
            .graphs
            .iter()
            .find(|g| &g.name == graph)
            .unwrap()
            .bytes;
        let proto = ModelProto::decode(blob.as_slice()).unwrap();
        let g = proto.graph.as_ref().unwrap();
        let fed: std::collections::HashSet<&str> = g
            .node
            .iter()
            .filter(|n| n.op_type == "Gather")
            .flat_map(|n| n.input.iter().map(String::as_str))
            .collect();
        for (t, init) in g.initializer.iter().enumerate() {
            if !fed.contains(init.name.as_str()) || init.raw_data.len() > 64 {
                // Large tables: their values cannot move an index; sizes are checked at load.
                continue;
            }
            for at in 0..init.raw_data.len() {
                for value in [0x80u8, 0xff, 0x7f] {
                    let mut b = base.clone();
                    edit(&mut b, graph, |m| {
                        m.graph.as_mut().unwrap().initializer[t].raw_data[at] = value
                    });
                    let what = format!("{graph}: initializer {} byte {at} = {value:#x}", init.name);
                    *outcomes
                        .entry(open_and_serve(b.to_bytes().unwrap(), &what))
                        .or_default() += 1;
                }
            }
        }
    }
    eprintln!("Gather constants mutated: {outcomes:?}");
    assert!(
        outcomes.values().sum::<usize>() > 0,
        "no Gather constant found in the graphs"
    );
}

/// Seeded 1-4 byte mutations of every graph of an artifact without a weight section, framed
/// with a valid checksum (what libugr's `ugr_engine_open_bytes` sees), opened with Auto and
/// run: never a panic or a hang. `UGR_TRACT_MUTATIONS` sets the count per graph (default 40;
/// in [`byte_mutations_never_panic_or_hang`] it is the total).
#[test]
fn weightless_artifacts_with_flipped_graph_bytes_never_panic_when_run() {
    let count = mutation_count(40);
    let base = without_weights();
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for graph in graph_names(&base) {
        for case in 0..count {
            let mut b = base.clone();
            let bytes = graph_bytes(&mut b, &graph);
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] ^= 1 << (next() % 8);
            }
            let what = format!("{graph} case {case}");
            *outcomes
                .entry(open_and_serve(b.to_bytes().unwrap(), &what))
                .or_default() += 1;
        }
    }
    eprintln!("weightless artifacts with flipped graph bytes: {outcomes:?}");
}
