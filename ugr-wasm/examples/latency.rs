//! The same call the browser makes (`Session::recommend`, JSON included), timed natively:
//! the baseline for the Chromium figure of `tests/web/run.sh`.
//! `cargo run --release -p ugr-wasm --example latency -- <model.ugr> [history, e.g. 1,2,3]`

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "tests/data/tiny-model.ugr".into());
    let history: Vec<u32> = args
        .next()
        .unwrap_or_else(|| "1,2,3".into())
        .split(',')
        .map(|t| t.trim().parse().expect("history: comma-separated item ids"))
        .collect();
    let bytes = std::fs::read(&path).expect("read the model");
    let mut session = ugr_wasm::Session::default();
    let h = session.open(&bytes).expect("open the model");
    for _ in 0..10 {
        session.recommend(h, &history, 10, 20, false).unwrap();
    }
    let mut ms: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            session.recommend(h, &history, 10, 20, false).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "{path}: native p50 {:.3} ms, p99 {:.3} ms over 200 requests",
        ms[100], ms[198]
    );
}
