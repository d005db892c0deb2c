//! What an ONNX graph must be before tract sees it.
//!
//! tract is written for models from trusted exporters: mutated graph bytes with a valid
//! artifact checksum made it panic (an index out of bounds in a constant-folded `Gather`, a
//! missing name in its loader) or loop for minutes (analysing a `LayerNormalization` whose
//! attributes were changed). The exporter of the model contract writes a small, known
//! vocabulary of graphs, so this check accepts exactly what it could have written and names
//! the first thing that differs:
//!
//! - operators from the standard domain, in the set the exporter uses ([`OPS`]);
//! - every node input defined before use (graph input, initializer or an earlier node's
//!   output), every output name new, every graph output defined;
//! - tensors (initializers and `Constant` values) of a known element type, at most
//!   [`MAX_ELEMENTS`] elements, with exactly the bytes or values their dims say, no external
//!   data; declared input/output dims at most [`MAX_DIM`];
//! - attributes: integers within `±MAX_DIM`, axes within `±8`, a `perm` that is a
//!   permutation, finite floats;
//! - a `Gather` of two constant tensors: indices within the gathered axis.
//!
//! Whatever still goes wrong inside tract is caught as a panic by the caller.

use std::borrow::ToOwned;
use std::collections::{HashMap, HashSet};
use std::format;
use std::string::String;
use std::vec::Vec;

use prost::Message as _;
use tract_onnx::pb::{self, ModelProto, NodeProto, TensorProto, attribute_proto::AttributeType};

/// Operators the exporter writes (`ugr-train/src/export/`); a graph with another is refused.
pub const OPS: &[&str] = &[
    "Add",
    "Cast",
    "Concat",
    "Constant",
    "Div",
    "Equal",
    "Erf",
    "Gather",
    "Gemm",
    "Greater",
    "Identity",
    "LayerNormalization",
    "MatMul",
    "Mul",
    "Not",
    "Range",
    "ReduceSum",
    "Reshape",
    "Shape",
    "Slice",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Transpose",
    "Unsqueeze",
    "Where",
];

/// Most elements in one tensor (1 GiB of f32).
pub const MAX_ELEMENTS: u64 = 1 << 28;

/// Largest dimension or integer attribute.
pub const MAX_DIM: i64 = 1 << 24;

/// Checks `bytes` as a graph of the model contract; the error names what differs.
pub fn check_graph(bytes: &[u8]) -> Result<(), String> {
    let model = ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model ({e})"))?;
    let graph = model.graph.as_ref().ok_or("no graph")?;
    if !graph.sparse_initializer.is_empty() {
        return Err("sparse initializers".into());
    }
    let mut defined: HashSet<&str> = HashSet::new();
    let mut constants: HashMap<&str, &TensorProto> = std::collections::HashMap::new();
    for input in &graph.input {
        value_info_dims(input)?;
        defined.insert(&input.name);
    }
    for t in &graph.initializer {
        check_tensor(t).map_err(|e| format!("initializer {:?}: {e}", t.name))?;
        defined.insert(&t.name);
        constants.insert(&t.name, t);
    }
    for node in &graph.node {
        let at = || format!("node {:?} ({})", node.name, node.op_type);
        if !(node.domain.is_empty() || node.domain == "ai.onnx") || !OPS.contains(&node.op_type.as_str()) {
            return Err(format!("{}: an operator the model contract does not use", at()));
        }
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            if !defined.contains(input.as_str()) {
                return Err(format!("{}: input {input:?} is not defined before it", at()));
            }
        }
        for a in &node.attribute {
            check_attribute(a).map_err(|e| format!("{}: attribute {:?}: {e}", at(), a.name))?;
        }
        if node.op_type == "Constant" {
            let t = node
                .attribute
                .iter()
                .find_map(|a| a.t.as_ref())
                .ok_or_else(|| format!("{}: no tensor value", at()))?;
            if let Some(out) = node.output.first() {
                constants.insert(out, t);
            }
        }
        if node.op_type == "Gather" {
            check_constant_gather(node, &constants).map_err(|e| format!("{}: {e}", at()))?;
        }
        for out in &node.output {
            if out.is_empty() || !defined.insert(out) {
                return Err(format!("{}: output {out:?} is empty or defined twice", at()));
            }
        }
    }
    for out in &graph.output {
        value_info_dims(out)?;
        if !defined.contains(out.name.as_str()) {
            return Err(format!("graph output {:?} is not computed", out.name));
        }
    }
    Ok(())
}

fn value_info_dims(v: &pb::ValueInfoProto) -> Result<(), String> {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as Type;
    let Some(Type::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Ok(());
    };
    for d in t.shape.iter().flat_map(|s| &s.dim) {
        if let Some(Value::DimValue(n)) = d.value
            && !(0..=MAX_DIM).contains(&n)
        {
            return Err(format!("{:?}: dimension {n} out of range", v.name));
        }
    }
    Ok(())
}

/// Bytes per element of the element types the exporter writes (ONNX `DataType` numbers).
fn element_bytes(data_type: i32) -> Option<u64> {
    match data_type {
        1 | 6 => Some(4),  // float, int32
        7 | 11 => Some(8), // int64, double
        9 => Some(1),      // bool
        10 => Some(2),     // float16
        _ => None,
    }
}

fn elements(t: &TensorProto) -> Result<u64, String> {
    if t.dims.len() > 8 {
        return Err(format!("rank {} above 8", t.dims.len()));
    }
    t.dims.iter().try_fold(1u64, |n, &d| {
        let d = u64::try_from(d).map_err(|_| format!("negative dimension {d}"))?;
        n.checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| "too many elements".to_owned())
    })
}

fn check_tensor(t: &TensorProto) -> Result<(), String> {
    let size = element_bytes(t.data_type).ok_or_else(|| format!("element type {}", t.data_type))?;
    let n = elements(t)?;
    if t.data_location == Some(1) || !t.external_data.is_empty() || t.segment.is_some() {
        return Err("external or segmented data".into());
    }
    let stored = if !t.raw_data.is_empty() {
        let len = t.raw_data.len() as u64;
        if len.is_multiple_of(size) {
            len / size
        } else {
            u64::MAX
        }
    } else {
        match t.data_type {
            1 => t.float_data.len() as u64,
            6 | 9 | 10 => t.int32_data.len() as u64,
            7 => t.int64_data.len() as u64,
            11 => t.double_data.len() as u64,
            _ => u64::MAX,
        }
    };
    if stored != n {
        return Err(format!("{n} elements by its dims, {stored} stored"));
    }
    Ok(())
}

fn check_attribute(a: &pb::AttributeProto) -> Result<(), String> {
    let axis_like = matches!(a.name.as_str(), "axis" | "axes" | "perm");
    let bound = if axis_like { 8 } else { MAX_DIM };
    match AttributeType::try_from(a.r#type).map_err(|_| format!("type {}", a.r#type))? {
        AttributeType::Int if !(-bound..=bound).contains(&a.i) => Err(format!("{} out of range", a.i)),
        AttributeType::Ints => {
            if a.ints.len() > 16 || a.ints.iter().any(|v| !(-bound..=bound).contains(v)) {
                return Err("values out of range".into());
            }
            if a.name == "perm" {
                let mut seen = [false; 8];
                for &p in &a.ints {
                    let p = usize::try_from(p)
                        .ok()
                        .filter(|&p| p < a.ints.len())
                        .ok_or("not a permutation")?;
                    if std::mem::replace(&mut seen[p], true) {
                        return Err("not a permutation".into());
                    }
                }
            }
            Ok(())
        }
        AttributeType::Float if !a.f.is_finite() => Err("not finite".into()),
        AttributeType::Floats if a.floats.iter().any(|f| !f.is_finite()) => Err("not finite".into()),
        AttributeType::Tensor => a.t.as_ref().map_or(Err("no tensor".into()), check_tensor),
        AttributeType::Int
        | AttributeType::Float
        | AttributeType::Floats
        | AttributeType::String
        | AttributeType::Strings => Ok(()),
        _ => Err("an attribute type the exporter does not write".into()),
    }
}

/// Integer values of a constant tensor (int64 or int32), when it has few enough to read.
fn int_values(t: &TensorProto) -> Option<Vec<i64>> {
    match t.data_type {
        7 if !t.raw_data.is_empty() => Some(
            t.raw_data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        7 => Some(t.int64_data.clone()),
        6 if !t.raw_data.is_empty() => Some(
            t.raw_data
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
                .collect(),
        ),
        6 => Some(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
        _ => None,
    }
}

/// `Gather(data, indices)` with both constant: every index within the gathered axis (tract
/// folds such nodes at load time and indexed out of bounds on mutated indices).
fn check_constant_gather(node: &NodeProto, constants: &HashMap<&str, &TensorProto>) -> Result<(), String> {
    let (Some(data), Some(indices)) = (
        node.input.first().and_then(|n| constants.get(n.as_str())),
        node.input.get(1).and_then(|n| constants.get(n.as_str())),
    ) else {
        return Ok(());
    };
    let axis = node
        .attribute
        .iter()
        .find(|a| a.name == "axis")
        .map_or(0, |a| a.i);
    let rank = data.dims.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    let len = usize::try_from(axis)
        .ok()
        .and_then(|a| data.dims.get(a))
        .copied()
        .ok_or("axis outside the data's rank")?;
    if let Some(values) = int_values(indices)
        && values.iter().any(|&i| !(-len..len).contains(&i))
    {
        return Err(format!("a constant index outside the axis of length {len}"));
    }
    Ok(())
}
