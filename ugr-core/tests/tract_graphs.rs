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

fn edit(bundle: &mut Bundle, graph: &str, f: impl FnOnce(&mut ModelProto)) {
    let blob = bundle
        .model
        .as_mut()
        .unwrap()
        .graphs
        .iter_mut()
        .find(|g| g.name == graph)
        .unwrap();
    let mut m = ModelProto::decode(blob.bytes.as_slice()).unwrap();
    f(&mut m);
    blob.bytes = m.encode_to_vec();
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
    let count: u64 = std::env::var("UGR_TRACT_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let base = tiny();
    let names = graph_names(&base);
    let history = [ItemId::new(1), ItemId::new(2), ItemId::new(3)];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut opened, mut refused) = (0, 0);
    for case in 0..count {
        let mut b = base.clone();
        let graph = &names[(next() % names.len() as u64) as usize];
        let blob = b
            .model
            .as_mut()
            .unwrap()
            .graphs
            .iter_mut()
            .find(|g| &g.name == graph)
            .unwrap();
        // Graph structure sits before the weights in the exporter's graphs; bias towards it.
        let span = if next() % 2 == 0 {
            blob.bytes.len().min(2048)
        } else {
            blob.bytes.len()
        };
        for _ in 0..1 + next() % 4 {
            let at = (next() % span as u64) as usize;
            blob.bytes[at] ^= 1 << (next() % 8);
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
