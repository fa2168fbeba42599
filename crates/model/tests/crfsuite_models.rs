//! CRFsuite model files: chaincrf reads the models python-crfsuite trained
//! (tests/data/crfsuite, made by its generate.py) with the weights CRFsuite
//! reports and tags the held-out data exactly as python-crfsuite did (same
//! labels, marginals within 1e-9); damaged files are clean errors.

use chaincrf_features::{read_crfsuite_data, AttrKind};
use chaincrf_model::{ClassicInput, ClassicTagger, Model, ModelIoError};
use serde_json::Value;
use std::path::{Path, PathBuf};

const MODELS: [&str; 3] = ["l1", "dense", "ap"];

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/crfsuite")
        .join(name)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(data(&format!("{name}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(name: &str) -> Model {
    chaincrf_model::load(&data(&format!("{name}.crfsuite"))).unwrap_or_else(|e| panic!("{e}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect()
}

/// (name, name, weight) triples of python-crfsuite's `Tagger.info()`.
fn triples(v: &Value) -> Vec<(&str, &str, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| (t[0].as_str().unwrap(), t[1].as_str().unwrap(), t[2].as_f64().unwrap()))
        .collect()
}

/// `Tagger.info()` prints weights with 6 decimals.
const INFO_ROUNDING: f64 = 5.0000001e-7;

#[test]
fn weights_are_those_crfsuite_reports() {
    for name in MODELS {
        let m = load(name);
        let want = expected(name);
        let labels = strings(&want["labels"]);
        assert_eq!(m.labels().labels(), labels, "{name}");
        let k = labels.len();
        let exact = m.exact_view().expect("CRFsuite models keep f64 weights");
        assert_eq!(m.layout().num_edge, 0);
        assert!(!m.structure().start_end && m.structure().transitions);
        assert!(exact.start.iter().chain(exact.end).all(|&w| w == 0.0));
        let attr_count = want["num_attributes"].as_u64().unwrap() as usize;
        assert_eq!(m.attributes().len(AttrKind::State), attr_count, "{name}");

        let mut state_seen = vec![false; exact.state.as_dense().unwrap().len()];
        for (attr, label, w) in triples(&want["state_features"]) {
            let id = (0..attr_count as u32)
                .find(|&id| m.attributes().name(AttrKind::State, id) == Some(attr))
                .unwrap_or_else(|| panic!("{name}: attribute {attr:?} missing"));
            let slot = id as usize * k + m.labels().id(label).unwrap() as usize;
            assert!(
                (exact.state.as_dense().unwrap()[slot] - w).abs() <= INFO_ROUNDING,
                "{name}: ({attr}, {label})"
            );
            assert_eq!(
                m.view().state.as_dense().unwrap()[slot],
                exact.state.as_dense().unwrap()[slot] as f32
            );
            state_seen[slot] = true;
        }
        // Pairs without a feature in the file weigh exactly 0.
        for (slot, seen) in state_seen.iter().enumerate() {
            assert!(
                *seen || exact.state.as_dense().unwrap()[slot] == 0.0,
                "{name}: slot {slot}"
            );
        }
        let mut trans_seen = vec![false; k * k];
        for (from, to, w) in triples(&want["transitions"]) {
            let slot = m.labels().id(from).unwrap() as usize * k + m.labels().id(to).unwrap() as usize;
            assert!(
                (exact.transitions[slot] - w).abs() <= INFO_ROUNDING,
                "{name}: {from} → {to}"
            );
            trans_seen[slot] = true;
        }
        for (slot, seen) in trans_seen.iter().enumerate() {
            assert!(
                *seen || exact.transitions[slot] == 0.0,
                "{name}: transition slot {slot}"
            );
        }
    }
}

#[test]
fn the_l1_model_has_dropped_features_and_the_dense_one_has_all() {
    // What the fixtures are for: L1 leaves most pairs without a feature;
    // possible_states/possible_transitions give (nearly) every pair one.
    let l1 = load("l1");
    let zeros = l1
        .exact_view()
        .unwrap()
        .state
        .as_dense()
        .unwrap()
        .iter()
        .filter(|&&w| w == 0.0)
        .count();
    assert!(
        zeros * 3 > l1.view().state.as_dense().unwrap().len(),
        "{zeros} of {}",
        l1.view().state.as_dense().unwrap().len()
    );
    let want = expected("dense");
    let dense = load("dense");
    // (CRFsuite leaves out features whose weight is exactly 0.)
    let features = triples(&want["state_features"]).len();
    assert!(
        features * 10 >= dense.view().state.as_dense().unwrap().len() * 9,
        "{features} of {} pairs have a feature",
        dense.view().state.as_dense().unwrap().len()
    );
}

#[test]
fn tags_exactly_as_python_crfsuite() {
    for name in MODELS {
        let m = load(name);
        let want = expected(name);
        let text = std::fs::read_to_string(data(&format!("{name}.test"))).unwrap();
        let sequences = read_crfsuite_data(text.as_bytes(), name).unwrap();
        let predictions = want["predictions"].as_array().unwrap();
        assert_eq!(sequences.len(), predictions.len());
        let mut tagger = ClassicTagger::new(&m).unwrap();
        let k = m.num_labels();
        let mut marginals = Vec::new();
        let mut worst = 0f64;
        for (s, (seq, p)) in sequences.iter().zip(predictions).enumerate() {
            tagger.observe(ClassicInput::Attributes(&seq.attrs)).unwrap();
            let path = tagger.tagger().viterbi(None).unwrap();
            let got: Vec<&str> = path.labels.iter().map(|&y| m.labels().label(y as u32)).collect();
            assert_eq!(got, strings(&p["labels"]), "{name}: sequence {s}");
            tagger.tagger().marginals(None, &mut marginals).unwrap();
            for (t, row) in p["marginals"].as_array().unwrap().iter().enumerate() {
                for (y, want) in row.as_array().unwrap().iter().enumerate() {
                    let diff = (marginals[t * k + y] - want.as_f64().unwrap()).abs();
                    worst = worst.max(diff);
                    assert!(diff <= 1e-9, "{name}: sequence {s}, position {t}, label {y}: {diff:e}");
                }
            }
        }
        eprintln!("{name}: largest marginal difference to python-crfsuite {worst:e}");
    }
}

#[test]
fn from_bytes_reads_crfsuite_files_too() {
    let bytes = std::fs::read(data("ap.crfsuite")).unwrap();
    assert!(bytes.starts_with(b"lCRF"));
    let a = chaincrf_model::from_bytes(&bytes, Path::new("mem")).unwrap();
    let b = load("ap");
    assert!(a.has_exact_weights());
    assert_eq!(a.to_flat(), b.to_flat());
    assert_eq!(a.labels(), b.labels());
}

#[test]
fn saved_again_they_keep_every_digit() {
    // chaincrf's own format stores the exact weights of such a model (version 2).
    let m = load("l1");
    let bytes = chaincrf_model::to_bytes(&m).unwrap();
    assert_eq!(&bytes[8..12], &2u32.to_le_bytes());
    let back = chaincrf_model::from_bytes(&bytes, Path::new("m")).unwrap();
    assert!(back.has_exact_weights());
    assert_eq!(back.to_flat(), m.to_flat());
    assert_eq!(
        back.view().state.as_dense().unwrap(),
        m.view().state.as_dense().unwrap()
    );
    let mut pruned = m.clone();
    let dropped = pruned.prune_zero_attributes();
    assert_eq!(dropped, 0, "CRFsuite keeps only attributes with features");
    assert_eq!(pruned.to_flat(), m.to_flat());
}

fn reason(bytes: &[u8]) -> String {
    match chaincrf_model::from_bytes(bytes, Path::new("forged.crfsuite")) {
        Err(e @ ModelIoError::BadCrfsuiteModel { .. }) => {
            let s = e.to_string();
            assert!(s.starts_with("forged.crfsuite: not a valid CRFsuite model: "), "{s}");
            s
        }
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn truncated_at_every_byte_is_an_error() {
    for name in MODELS {
        let bytes = std::fs::read(data(&format!("{name}.crfsuite"))).unwrap();
        for len in 4..bytes.len() {
            let r = reason(&bytes[..len]);
            assert!(r.contains("truncated"), "{name} cut at {len}: {r}");
        }
        // Shorter than the magic: not recognized as CRFsuite, a chaincrf error.
        assert!(chaincrf_model::from_bytes(&bytes[..3], Path::new("x")).is_err());
    }
}

#[test]
fn truncated_with_a_matching_size_field_is_an_error() {
    // A cut file whose header's size was fixed up: every later check must hold.
    let bytes = std::fs::read(data("l1.crfsuite")).unwrap();
    for len in 48..bytes.len() {
        let mut cut = bytes[..len].to_vec();
        cut[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        reason(&cut);
    }
}

#[test]
fn named_damage() {
    let good = std::fs::read(data("l1.crfsuite")).unwrap();
    let with = |offset: usize, value: u32| {
        let mut b = good.clone();
        b[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        b
    };
    let u32_at = |o: usize| u32::from_le_bytes(good[o..o + 4].try_into().unwrap()) as usize;
    let mut longer = good.clone();
    longer.extend_from_slice(b"junk");
    assert!(reason(&longer).contains("4 unexpected bytes"));
    let mut kind = good.clone();
    kind[8..12].copy_from_slice(b"FOMD");
    assert!(reason(&kind).contains("model type \"FOMD\""));
    assert!(reason(&with(12, 101)).contains("format version 101"));
    assert!(reason(&with(20, 0)).contains("no labels"));
    assert!(reason(&with(20, u32::MAX)).contains("label dictionary"));
    assert!(reason(&with(24, u32::MAX)).contains("attribute dictionary"));
    assert!(reason(&with(28, 7)).contains("expected \"FEAT\""));
    assert!(reason(&with(28, u32::MAX)).contains("features chunk"));
    let feat = u32_at(28);
    assert!(reason(&with(feat + 8, u32::MAX)).contains("does not hold"));
    let labels = u32_at(32);
    assert!(reason(&with(labels + 12, 0x7153_4462)).contains("big-endian"));
    let refs = u32_at(44);
    assert!(reason(&with(refs + 8, 1)).contains("lists for"));
    assert!(reason(&with(refs + 12, 0)).contains("outside the chunk's lists"));
    // A list entry naming a feature that does not exist, then one of the wrong kind.
    let first_list = u32_at(refs + 12);
    assert!(reason(&with(first_list + 4, 1 << 30)).contains("there are"));
    let trans_refs = u32_at(40);
    let first_transition_list = u32_at(trans_refs + 12);
    let a_transition = u32_at(first_transition_list + 4) as u32;
    assert!(reason(&with(first_list + 4, a_transition)).contains("not a state feature"));
    // A NaN weight.
    let mut nan = good.clone();
    let w = feat + 12 + 12;
    nan[w..w + 8].copy_from_slice(&f64::NAN.to_le_bytes());
    assert!(reason(&nan).contains("not finite"), "{}", reason(&nan));
}

#[test]
fn random_byte_flips_are_errors_or_models() {
    // Flipping bytes may leave a valid model (a weight changed): then it must
    // still be usable; otherwise a clean error. Never a panic.
    let good = std::fs::read(data("dense.crfsuite")).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut errors, mut models) = (0, 0);
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            b[i] ^= 1 << (next() % 8);
        }
        match chaincrf_model::from_bytes(&b, Path::new("flipped")) {
            Ok(m) => {
                models += 1;
                let items = vec![vec![("bias".to_owned(), 1.0)], vec![("len".to_owned(), 0.5)]];
                let mut t = ClassicTagger::new(&m).unwrap();
                t.observe(ClassicInput::Attributes(&items)).unwrap();
                let _ = t.tagger().viterbi(None);
            }
            Err(ModelIoError::BadCrfsuiteModel { .. } | ModelIoError::BadModelFile { .. }) => errors += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(errors > 0 && models > 0, "{errors} errors, {models} models");
}

/// Writes a CRFsuite model file with the layout CRFsuite 0.12 writes (the
/// dictionaries without hash tables, which the reader does not use), so tests
/// can make files CRFsuite would never write. Features are `(type, src, dst,
/// weight)`; each goes into the reference list of its source.
fn write_model(labels: &[&[u8]], attrs: &[&[u8]], features: &[(u32, u32, u32, f64)]) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn cqdb(names: &[&[u8]]) -> Vec<u8> {
        let mut records = Vec::new();
        let mut offsets = Vec::new();
        let data = 24 + 256 * 8;
        for (id, name) in names.iter().enumerate() {
            offsets.push((data + records.len()) as u32);
            put(&mut records, id as u32);
            put(&mut records, name.len() as u32 + 1);
            records.extend_from_slice(name);
            records.push(0);
        }
        let backward = data + records.len();
        let mut out = b"CQDB".to_vec();
        put(&mut out, (backward + 4 * names.len()) as u32);
        put(&mut out, 0);
        put(&mut out, 0x6244_5371);
        put(&mut out, names.len() as u32);
        put(&mut out, if names.is_empty() { 0 } else { backward as u32 });
        out.resize(data, 0);
        out.extend_from_slice(&records);
        for o in offsets {
            put(&mut out, o);
        }
        out
    }
    fn refs(out: &mut Vec<u8>, id: &[u8; 4], lists: &[Vec<u32>]) -> usize {
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        let begin = out.len();
        let size = 12 + 4 * lists.len() + lists.iter().map(|l| 4 + 4 * l.len()).sum::<usize>();
        out.extend_from_slice(id);
        put(out, size as u32);
        put(out, lists.len() as u32);
        let mut at = begin + 12 + 4 * lists.len();
        for l in lists {
            put(out, at as u32);
            at += 4 + 4 * l.len();
        }
        for l in lists {
            put(out, l.len() as u32);
            for &f in l {
                put(out, f);
            }
        }
        begin
    }
    let mut out = vec![0u8; 48];
    let off_features = out.len();
    out.extend_from_slice(b"FEAT");
    put(&mut out, (12 + 20 * features.len()) as u32);
    put(&mut out, features.len() as u32);
    for &(kind, src, dst, w) in features {
        put(&mut out, kind);
        put(&mut out, src);
        put(&mut out, dst);
        out.extend_from_slice(&w.to_le_bytes());
    }
    let off_labels = out.len();
    out.extend(cqdb(labels));
    let off_attrs = out.len();
    out.extend(cqdb(attrs));
    let lists = |kind: u32, n: usize| {
        let mut lists = vec![Vec::new(); n];
        for (fid, f) in features.iter().enumerate() {
            if f.0 == kind && (f.1 as usize) < n {
                lists[f.1 as usize].push(fid as u32);
            }
        }
        lists
    };
    let off_labelrefs = refs(&mut out, b"LFRF", &lists(1, labels.len()));
    let off_attrrefs = refs(&mut out, b"AFRF", &lists(0, attrs.len()));
    let size = out.len() as u32;
    let mut header = b"lCRF".to_vec();
    put(&mut header, size);
    header.extend_from_slice(b"FOMC");
    for v in [
        100,
        0,
        labels.len(),
        attrs.len(),
        off_features,
        off_labels,
        off_attrs,
        off_labelrefs,
        off_attrrefs,
    ] {
        put(&mut header, v as u32);
    }
    out[..48].copy_from_slice(&header);
    out
}

fn read(bytes: &[u8]) -> Result<Model, String> {
    chaincrf_model::from_bytes(bytes, Path::new("made")).map_err(|e| e.to_string())
}

#[test]
fn random_models_read_back_exactly() {
    // Models of every small shape, features in random order with random
    // weights (some exactly 0, some tiny): the dense weights are exactly the
    // features', and every other pair is 0.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let k = 1 + (next() % 5) as usize;
        let a = (next() % 7) as usize;
        let labels: Vec<Vec<u8>> = (0..k).map(|y| format!("L{y}").into_bytes()).collect();
        let attrs: Vec<Vec<u8>> = (0..a).map(|i| format!("a:{i}=ü").into_bytes()).collect();
        let mut features = Vec::new();
        let mut want_state = vec![0f64; a * k];
        let mut want_trans = vec![0f64; k * k];
        let mut weight = || match next() % 6 {
            0 | 1 => None,
            2 => Some(0.0),
            3 => Some(f64::from_bits(next() % 1000 + 1)),
            _ => Some((next() % 2_000_001) as f64 / 1e6 - 1.0),
        };
        for (slot, want) in want_state.iter_mut().enumerate() {
            if let Some(w) = weight() {
                features.push((0, (slot / k) as u32, (slot % k) as u32, w));
                *want = w;
            }
        }
        for (slot, want) in want_trans.iter_mut().enumerate() {
            if let Some(w) = weight() {
                features.push((1, (slot / k) as u32, (slot % k) as u32, w));
                *want = w;
            }
        }
        for i in (1..features.len()).rev() {
            features.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        let label_refs: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
        let attr_refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
        let m = read(&write_model(&label_refs, &attr_refs, &features)).unwrap();
        let exact = m.exact_view().unwrap();
        assert_eq!(exact.state.as_dense().unwrap(), want_state);
        assert_eq!(exact.transitions, want_trans);
        assert_eq!(m.labels().labels().len(), k);
        for (i, name) in attrs.iter().enumerate() {
            assert_eq!(m.attributes().name(AttrKind::State, i as u32).unwrap().as_bytes(), name);
        }
    }
}

#[test]
fn names_crfsuite_never_writes() {
    let labels: [&[u8]; 2] = [b"A", b"B"];
    let f = [(0, 0, 1, 0.5), (0, 1, 0, 2.0), (0, 2, 1, -1.0), (1, 0, 1, 0.25)];
    // An attribute name that is not UTF-8 is dropped with its features.
    let m = read(&write_model(&labels, &[b"x", b"\xff\xfe", b"z"], &f)).unwrap();
    assert_eq!(m.attributes().len(AttrKind::State), 2);
    assert_eq!(m.attributes().name(AttrKind::State, 1), Some("z"));
    assert_eq!(m.exact_view().unwrap().state.as_dense().unwrap(), [0.0, 0.5, 0.0, -1.0]);
    let e = read(&write_model(&[b"A", b"\xc3"], &[b"x"], &f[..1])).unwrap_err();
    assert!(e.contains("label 1 is not valid UTF-8"), "{e}");
    let e = read(&write_model(&[b"A", b"A"], &[b"x"], &f[..1])).unwrap_err();
    assert!(e.contains("label \"A\" appears twice"), "{e}");
    let e = read(&write_model(&labels, &[b"x", b"x"], &f[..2])).unwrap_err();
    assert!(e.contains("attribute \"x\" appears twice"), "{e}");
    let e = read(&write_model(&labels, &[b"x"], &[(0, 0, 1, 0.5), (0, 0, 1, 0.7)])).unwrap_err();
    assert!(e.contains("feature 1 repeats the state feature (\"x\", \"B\")"), "{e}");
    let e = read(&write_model(&labels, &[b"x"], &[(1, 0, 1, 0.5), (1, 0, 1, 0.7)])).unwrap_err();
    assert!(e.contains("feature 1 repeats the transition \"A\" → \"B\""), "{e}");
    let e = read(&write_model(&labels, &[b"x"], &[(0, 0, 2, 0.5)])).unwrap_err();
    assert!(e.contains("not a state feature of attribute 0"), "{e}");
    let e = read(&write_model(&labels, &[b"x"], &[(0, 0, 1, f64::INFINITY)])).unwrap_err();
    assert!(e.contains("not finite"), "{e}");
    // No attributes at all: a model of transitions only.
    let m = read(&write_model(&labels, &[], &f[3..])).unwrap();
    assert_eq!(m.exact_view().unwrap().transitions, [0.0, 0.25, 0.0, 0.0]);
}
