//! `chaincrf dump`: look inside a model.
//!
//! A model file is binary (compact and checksummed), so this command is how a
//! user sees what was learned: the labels, the transition matrix, start/end
//! weights, and the strongest state features of each label — the first things
//! to check when a model behaves oddly. `--json` writes the whole model
//! (every weight, with attribute names when the model kept them) for other
//! tools; the JSON shape is defined here by the command's own structs, so the
//! library types stay free of a JSON contract. Models read from CRFsuite files
//! keep their `f64` weights, and both outputs show those (the JSON with every
//! digit); chaincrf's own models show their `f32` weights.

use super::load_model;
use chaincrf_features::AttrKind;
use chaincrf_model::{ExtractorSpec, Model, WeightsView};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Options of `chaincrf dump`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  chaincrf dump --model chunk.model --top 5
  chaincrf dump --model chunk.model --json > chunk.json")]
pub struct Args {
    /// The model to show.
    #[arg(short, long, value_name = "MODEL")]
    pub model: PathBuf,
    /// How many state features to list per label, strongest (largest weight) first.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// Write the whole model as JSON instead.
    #[arg(long)]
    pub json: bool,
}

/// Runs `chaincrf dump`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model = load_model(&args.model)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    match model.exact_view() {
        Some(exact) if args.json => serde_json::to_writer(&mut out, &JsonModel::new(&model, exact))?,
        None if args.json => serde_json::to_writer(&mut out, &JsonModel::new(&model, model.view()))?,
        Some(exact) => out.write_all(text_report(&model, exact, &args).as_bytes())?,
        None => out.write_all(text_report(&model, model.view(), &args).as_bytes())?,
    }
    if args.json {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// The attribute's name, or its hash key when names were not kept.
fn attribute_name(model: &Model, kind: AttrKind, id: u32) -> String {
    match model.attributes().name(kind, id) {
        Some(n) => n.to_owned(),
        None => format!("#{:016x}", model.attributes().key(kind, id)),
    }
}

fn describe_extractor(spec: &ExtractorSpec) -> String {
    match spec {
        ExtractorSpec::CrfppTemplates { feature_columns, .. } => {
            format!("CRF++ templates over {feature_columns} feature column(s)")
        }
        ExtractorSpec::CrfsuiteAttributes => "CRFsuite attributes".to_owned(),
        ExtractorSpec::Custom { kind, payload } => format!("custom ({kind}, {} bytes of configuration)", payload.len()),
    }
}

/// The text report, from the model's `f32` weights or its exact ones.
fn text_report<W: Copy + Into<f64>>(model: &Model, w: WeightsView<'_, W>, args: &Args) -> String {
    let mut s = String::new();
    let k = model.num_labels();
    let layout = model.layout();
    let labels = model.labels().labels();
    let _ = writeln!(s, "model: {}", args.model.display());
    let _ = writeln!(s, "extractor: {}", describe_extractor(model.extractor()));
    if model.has_exact_weights() {
        let _ = writeln!(s, "weights: f64 (kept exactly, as in a CRFsuite model file)");
    }
    let _ = writeln!(s, "labels ({k}): {}", labels.join(" "));
    let _ = writeln!(
        s,
        "attributes: {} state, {} edge; weights: {} ({} non-zero)",
        layout.num_state,
        layout.num_edge,
        layout.len(),
        model.num_active_weights()
    );
    let st = model.structure();
    let _ = writeln!(
        s,
        "transitions: {}; start/end weights: {}",
        if st.transitions { "learned" } else { "none" },
        if st.start_end { "learned" } else { "none" }
    );
    if !st.forbidden_transitions.is_empty() || !st.forbidden_start.is_empty() || !st.forbidden_end.is_empty() {
        let pairs: Vec<String> = st
            .forbidden_transitions
            .iter()
            .map(|&(a, b)| format!("{}→{}", model.labels().label(a), model.labels().label(b)))
            .collect();
        let _ = writeln!(s, "forbidden transitions: {}", pairs.join(" "));
        let names = |ys: &[u32]| {
            ys.iter()
                .map(|&y| model.labels().label(y))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(s, "forbidden at start: {}", names(&st.forbidden_start));
        let _ = writeln!(s, "forbidden at end: {}", names(&st.forbidden_end));
    }
    if let ExtractorSpec::CrfppTemplates { source, .. } = model.extractor() {
        let _ = writeln!(s, "\ntemplate:");
        for line in source.lines().filter(|l| !l.trim().is_empty()) {
            let _ = writeln!(s, "  {line}");
        }
    }
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1).max(9);
    let row = |s: &mut String, name: &str, values: &mut dyn Iterator<Item = f64>| {
        let _ = write!(s, "{name:<width$}");
        for v in values {
            let _ = write!(s, " {v:>width$.4}");
        }
        s.push('\n');
    };
    let value = |x: &W| -> f64 { (*x).into() };
    if st.transitions {
        let _ = writeln!(s, "\ntransitions (row: previous label, column: next label):");
        let _ = write!(s, "{:<width$}", "");
        for l in labels {
            let _ = write!(s, " {l:>width$}");
        }
        s.push('\n');
        for (i, l) in labels.iter().enumerate() {
            row(&mut s, l, &mut w.transitions[i * k..(i + 1) * k].iter().map(value));
        }
    }
    if st.start_end {
        let _ = writeln!(s, "\nstart and end weights:");
        let _ = write!(s, "{:<width$}", "");
        for l in labels {
            let _ = write!(s, " {l:>width$}");
        }
        s.push('\n');
        row(&mut s, "start", &mut w.start.iter().map(value));
        row(&mut s, "end", &mut w.end.iter().map(value));
    }
    if args.top > 0 && layout.num_state > 0 {
        let _ = writeln!(s, "\ntop {} state features per label:", args.top);
        for (y, label) in labels.iter().enumerate() {
            let weight = |id: u32| value(&w.state.get(id as usize, y).expect("a model's state rows are dense"));
            let mut ids: Vec<u32> = (0..layout.num_state as u32).filter(|&id| weight(id) != 0.0).collect();
            // Largest weight first; ties in id order, so the listing is stable.
            ids.sort_by(|&a, &b| weight(b).total_cmp(&weight(a)).then(a.cmp(&b)));
            let _ = writeln!(s, "{label}:");
            for &id in ids.iter().take(args.top) {
                let _ = writeln!(
                    s,
                    "  {:>10.4}  {}",
                    weight(id),
                    attribute_name(model, AttrKind::State, id)
                );
            }
        }
    }
    s
}

/// The whole model as JSON, with weights of type `W` (`f32`, or `f64` for
/// models that keep exact weights).
#[derive(Serialize)]
struct JsonModel<'a, W> {
    labels: &'a [String],
    extractor: JsonExtractor<'a>,
    structure: JsonStructure<'a>,
    /// `k × k`, row = previous label.
    transitions: Vec<&'a [W]>,
    start: &'a [W],
    end: &'a [W],
    state_attributes: Vec<JsonAttribute<'a, W>>,
    edge_attributes: Vec<JsonAttribute<'a, W>>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum JsonExtractor<'a> {
    CrfppTemplates { template: &'a str, feature_columns: usize },
    CrfsuiteAttributes,
    Custom { name: &'a str, payload_bytes: usize },
}

#[derive(Serialize)]
struct JsonStructure<'a> {
    transitions: bool,
    start_end: bool,
    forbidden_transitions: Vec<(&'a str, &'a str)>,
    forbidden_start: Vec<&'a str>,
    forbidden_end: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonAttribute<'a, W> {
    /// The name when kept, else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    /// The 64-bit hash key, as hex (JSON numbers lose precision beyond 2^53).
    key: String,
    /// State attributes: one weight per label. Edge attributes: `k × k`, row-major.
    weights: &'a [W],
}

impl<'a, W> JsonModel<'a, W> {
    fn new(model: &'a Model, w: WeightsView<'a, W>) -> Self {
        let k = model.num_labels();
        let label = |y: &u32| model.labels().label(*y);
        let attributes = |kind: AttrKind, block: &'a [W], width: usize| {
            (0..model.attributes().len(kind) as u32)
                .map(|id| JsonAttribute {
                    name: model.attributes().name(kind, id),
                    key: format!("{:016x}", model.attributes().key(kind, id)),
                    weights: &block[id as usize * width..(id as usize + 1) * width],
                })
                .collect()
        };
        JsonModel {
            labels: model.labels().labels(),
            extractor: match model.extractor() {
                ExtractorSpec::CrfppTemplates {
                    source,
                    feature_columns,
                } => JsonExtractor::CrfppTemplates {
                    template: source,
                    feature_columns: *feature_columns,
                },
                ExtractorSpec::CrfsuiteAttributes => JsonExtractor::CrfsuiteAttributes,
                ExtractorSpec::Custom { kind, payload } => JsonExtractor::Custom {
                    name: kind,
                    payload_bytes: payload.len(),
                },
            },
            structure: JsonStructure {
                transitions: model.structure().transitions,
                start_end: model.structure().start_end,
                forbidden_transitions: model
                    .structure()
                    .forbidden_transitions
                    .iter()
                    .map(|(a, b)| (label(a), label(b)))
                    .collect(),
                forbidden_start: model.structure().forbidden_start.iter().map(label).collect(),
                forbidden_end: model.structure().forbidden_end.iter().map(label).collect(),
            },
            transitions: w.transitions.chunks(k.max(1)).collect(),
            start: w.start,
            end: w.end,
            state_attributes: attributes(AttrKind::State, w.state.as_dense().unwrap_or_default(), k),
            edge_attributes: attributes(AttrKind::Edge, w.edge, k * k),
        }
    }
}
