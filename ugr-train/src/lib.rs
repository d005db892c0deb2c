//! ugr-train: the trainer and the `ugr` command line.
//!
//! It reads the public benchmark formats, and (in later issues) trains the SID
//! transformer with candle, evaluates it with ugr-core's beam search and exports it.
//! Today it holds the SID index reader and `ugr sid stats`.

pub mod data;
