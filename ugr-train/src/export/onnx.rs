//! A small builder of ONNX graphs over the protobuf types that tract-onnx exposes
//! (`tract_onnx::pb`, encoded with prost). IR version 8, opset 17, standard operators only,
//! weights as initializers (f32, or f16 storage with a `Cast` to f32 at the point of use).

use half::f16;
use prost::Message;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto,
    type_proto,
};

/// ONNX IR version written.
pub const IR_VERSION: i64 = 8;
/// Default-domain opset written.
pub const OPSET: i64 = 17;

/// A dimension of a graph input or output.
#[derive(Clone, Debug)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A symbolic size (`dim_param`).
    Sym(&'static str),
}

/// Element types used by the graphs.
#[derive(Clone, Copy, Debug)]
pub enum Elem {
    /// 32-bit float.
    F32,
    /// 64-bit integer.
    I64,
}

impl Elem {
    fn proto(self) -> i32 {
        match self {
            Elem::F32 => DataType::Float as i32,
            Elem::I64 => DataType::Int64 as i32,
        }
    }
}

/// An attribute value.
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOAT`.
    Float(f32),
}

/// Graph under construction.
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    counter: usize,
    f16_weights: bool,
}

fn value_info(name: &str, elem: Elem, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            denotation: String::new(),
            value: Some(match d {
                Dim::Fixed(n) => tensor_shape_proto::dimension::Value::DimValue(*n),
                Dim::Sym(s) => tensor_shape_proto::dimension::Value::DimParam((*s).to_owned()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem.proto(),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

impl GraphBuilder {
    /// An empty graph; `f16_weights` stores float initializers as f16.
    pub fn new(f16_weights: bool) -> Self {
        GraphBuilder {
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            counter: 0,
            f16_weights,
        }
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}_{}", self.counter)
    }

    /// Declares a graph input and returns its name.
    pub fn input(&mut self, name: &str, elem: Elem, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, elem, dims));
        name.to_owned()
    }

    /// Exposes `value` as the graph output `name`.
    pub fn output(&mut self, value: &str, name: &str, elem: Elem, dims: &[Dim]) {
        self.nodes.push(NodeProto {
            input: vec![value.to_owned()],
            output: vec![name.to_owned()],
            name: format!("out_{name}"),
            op_type: "Identity".into(),
            ..NodeProto::default()
        });
        self.outputs.push(value_info(name, elem, dims));
    }

    /// Adds a node with one output.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(&op.to_lowercase());
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = AttributeProto {
                    name: name.to_owned(),
                    ..AttributeProto::default()
                };
                match a {
                    Attr::Int(i) => {
                        p.r#type = AttributeType::Int as i32;
                        p.i = i;
                    }
                    Attr::Ints(v) => {
                        p.r#type = AttributeType::Ints as i32;
                        p.ints = v;
                    }
                    Attr::Float(f) => {
                        p.r#type = AttributeType::Float as i32;
                        p.f = f;
                    }
                }
                p
            })
            .collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.to_owned(),
            attribute,
            ..NodeProto::default()
        });
        out
    }

    /// A float initializer (weights); with f16 storage it is cast back to f32 in the graph.
    pub fn weight(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        if self.f16_weights {
            let raw: Vec<u8> = data
                .iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect();
            self.initializers.push(TensorProto {
                name: format!("{name}.f16"),
                dims,
                data_type: DataType::Float16 as i32,
                raw_data: raw,
                ..TensorProto::default()
            });
            let to = DataType::Float as i64;
            self.node("Cast", &[&format!("{name}.f16")], vec![("to", Attr::Int(to))])
        } else {
            self.initializers.push(TensorProto {
                name: name.to_owned(),
                dims,
                data_type: DataType::Float as i32,
                raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ..TensorProto::default()
            });
            name.to_owned()
        }
    }

    /// A small f32 constant (never stored as f16).
    pub fn const_f32(&mut self, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh("const_f32");
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..TensorProto::default()
        });
        name
    }

    /// An i64 constant (`dims` empty for a scalar).
    pub fn const_i64(&mut self, dims: &[usize], data: &[i64]) -> String {
        let name = self.fresh("const_i64");
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..TensorProto::default()
        });
        name
    }

    /// The finished model, encoded.
    pub fn finish(self, name: &str) -> Vec<u8> {
        let model = ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "ugr".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: name.to_owned(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        };
        model.encode_to_vec()
    }
}
