//! The weight section: a model's parameters by name, stored next to its ONNX graphs.
//!
//! `ugr export` writes it as the blob [`WEIGHTS_BLOB`] of the artifact's model section:
//! the postcard encoding of a [`WeightFile`]. Names are the trainer's checkpoint keys
//! (`enc.layers.0.attn.qkv.weight`, ...), shapes as the trainer holds them (a linear layer's
//! weight is `[out, in]`), data little-endian f32 or f16. The graphs stay in the artifact
//! unchanged (tract and onnxruntime ignore this blob); the native backend reads only this.
//! [`WEIGHTS_FORMAT`] names the architecture the tensors belong to: any change to what the
//! native backend computes from them is a new format string, so an engine never runs weights
//! under the wrong equations.
//!
//! # Byte rules
//!
//! Values are little-endian, packed without padding (`dims` product times 2 or 4 bytes):
//! no alignment is assumed, so a view at any offset of an artifact (a memory map, a caller's
//! buffer) is read as is. The native backend reads the section through [`WeightFileRef`]
//! (nothing copied) and re-lays each matrix once into its kernel's panels, in the stored
//! type: f16 stays f16 in memory and is widened inside the kernel
//! ([`PackedLinear`](super::kernels::PackedLinear)).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// The blob name of the weight section in [`ModelSection::graphs`](crate::ModelSection).
pub const WEIGHTS_BLOB: &str = "weights";

/// The architecture revision this build's native backend computes: pre-LayerNorm blocks
/// (epsilon 1e-5), fused `qkv` projection split `[q | k | v]` by heads, exact (erf) GELU,
/// learned positions, tied token-embedding logits with `out_bias`, the SID head over a
/// KV cache, the item head (tied `sid_emb` rows 1.. or untied `item_out`).
pub const WEIGHTS_FORMAT: &str = "ugr-native-1";

/// How a tensor's values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightType {
    /// 4 bytes per value, little-endian IEEE binary32.
    F32,
    /// 2 bytes per value, little-endian IEEE binary16 (computed in f32).
    F16,
}

/// One named tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightTensor {
    /// Checkpoint key.
    pub name: String,
    /// Shape, outermost first.
    pub dims: Vec<u32>,
    /// Storage type of `data`.
    pub dtype: WeightType,
    /// `product(dims)` values, little-endian.
    pub data: Vec<u8>,
}

impl WeightTensor {
    /// A tensor from f32 values, stored as `dtype`.
    pub fn from_f32(name: &str, dims: &[u32], values: &[f32], dtype: WeightType) -> WeightTensor {
        let data = match dtype {
            WeightType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            WeightType::F16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        };
        WeightTensor {
            name: name.into(),
            dims: dims.to_vec(),
            dtype,
            data,
        }
    }

    /// The values as f32, or `None` when `data` does not hold `product(dims)` values.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        self.view().to_f32()
    }

    /// The tensor borrowed.
    pub fn view(&self) -> WeightTensorRef<'_> {
        WeightTensorRef {
            name: &self.name,
            dims: self.dims.clone(),
            dtype: self.dtype,
            data: &self.data,
        }
    }
}

/// One named tensor, borrowed from the weight section's bytes. Same encoding as
/// [`WeightTensor`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WeightTensorRef<'a> {
    /// Checkpoint key.
    pub name: &'a str,
    /// Shape, outermost first.
    pub dims: Vec<u32>,
    /// Storage type of `data`.
    pub dtype: WeightType,
    /// `product(dims)` values, little-endian.
    pub data: &'a [u8],
}

impl WeightTensorRef<'_> {
    /// The number of values `dims` implies, when `data` holds exactly that many.
    pub fn len(&self) -> Option<usize> {
        let n = self
            .dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))?;
        let width = match self.dtype {
            WeightType::F32 => 4,
            WeightType::F16 => 2,
        };
        (self.data.len() == n.checked_mul(width)?).then_some(n)
    }

    /// Whether the tensor has no values (or a shape its data does not match).
    pub fn is_empty(&self) -> bool {
        self.len().is_none_or(|n| n == 0)
    }

    /// The values as f32, or `None` when `data` does not hold `product(dims)` values.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        self.len()?;
        Some(match self.dtype {
            WeightType::F32 => self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            WeightType::F16 => self
                .data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        })
    }
}

/// The weight section borrowed from its bytes. Same encoding as [`WeightFile`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WeightFileRef<'a> {
    /// Always [`WEIGHTS_FORMAT`] for the tensors this build understands.
    pub format: &'a str,
    /// The tensors, in any order, names unique.
    #[serde(borrow)]
    pub tensors: Vec<WeightTensorRef<'a>>,
}

impl<'a> WeightFileRef<'a> {
    /// Decodes blob bytes without copying the tensors' data.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<WeightFileRef<'a>, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&WeightTensorRef<'a>> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// The weight section's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightFile {
    /// Always [`WEIGHTS_FORMAT`] for the tensors this build understands.
    pub format: String,
    /// The tensors, in any order, names unique.
    pub tensors: Vec<WeightTensor>,
}

impl WeightFile {
    /// The blob bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// Decodes blob bytes (shape and content checks are the backend's).
    pub fn from_bytes(bytes: &[u8]) -> Result<WeightFile, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&WeightTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
