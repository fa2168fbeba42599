//! Cross-crate flows through the facade: a CRF++ template model trained,
//! saved, loaded and tagging identically; a segmenter trained on inline
//! sentences; core algorithms on a trained model's potentials.

use chaincrf::core::{chain, Potentials};
use chaincrf::features::{read_column_data, TemplateExtractor, Templates};
use chaincrf::model::{ExtractorSpec, Structure};
use chaincrf::train::{Algorithm, DatasetBuilder, Params, Trainer};

const DATA: &str = "He PRP B\nreckons VBZ O\nthe DT B\ncurrent JJ I\naccount NN I\n\n\
The DT B\ndeficit NN I\nwill MD O\nnarrow VB O\n\nthe DT B\nbig JJ I\ndog NN I\nbarks VBZ O\n\n";
const TEMPLATE: &str = "U00:%x[-1,0]\nU01:%x[0,0]\nU02:%x[0,1]\nU03:%x[-1,1]/%x[0,1]\nB\n";

#[test]
fn crfpp_template_model_round_trips_through_disk() {
    let seqs = read_column_data(DATA.as_bytes(), "inline").unwrap();
    let templates = Templates::parse(TEMPLATE, "inline-template").unwrap();
    let extractor = TemplateExtractor::new(templates.clone(), 2).unwrap();
    let mut b = DatasetBuilder::new()
        .extractor(ExtractorSpec::CrfppTemplates {
            source: TEMPLATE.into(),
            feature_columns: 2,
        })
        .structure(Structure {
            transitions: templates.has_plain_bigram(),
            ..Structure::default()
        });
    for s in &seqs {
        let features: Vec<Vec<String>> = s.rows.iter().map(|r| r[..2].to_vec()).collect();
        let labels: Vec<&str> = s.rows.iter().map(|r| r[2].as_str()).collect();
        b.add(&extractor, &features[..], &labels).unwrap();
    }
    let data = b.build();
    let params = Params::new(Algorithm::Lbfgs)
        .c2(0.05)
        .possible_states(true)
        .possible_transitions(true)
        .check()
        .unwrap();
    let model = Trainer::new(params).threads(2).fit(&data).unwrap().into_model();

    let dir = std::env::temp_dir().join(format!("chaincrf-integration-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("np.model");
    chaincrf::model::save(&model, &path).unwrap();
    let loaded = chaincrf::model::load(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let (mut a, mut b) = (model.tagger(), loaded.tagger());
    let mut right = 0;
    let mut total = 0;
    for s in &seqs {
        let features: Vec<Vec<String>> = s.rows.iter().map(|r| r[..2].to_vec()).collect();
        a.observe(&extractor, &features[..]);
        b.observe(&extractor, &features[..]);
        let (pa, pb) = (a.viterbi(None).unwrap(), b.viterbi(None).unwrap());
        assert_eq!(pa.labels, pb.labels);
        // The trained model's potentials go through any core algorithm.
        let p = a.potentials();
        assert!(chain::log_partition(p).unwrap() >= pa.score - 1e-9);
        assert_eq!(chain::kbest(p, 1).unwrap()[0].labels, pa.labels);
        assert_eq!(p.len(), s.rows.len());
        for (t, &y) in pa.labels.iter().enumerate() {
            right += usize::from(model.labels().label(y as u32) == s.rows[t][2]);
            total += 1;
        }
    }
    assert_eq!(right, total, "the training data should be fitted exactly");
}

#[test]
fn segmenter_trained_on_inline_sentences() {
    use chaincrf::cws::{train_segmenter, CwsTrainOptions};
    let corpus = "我们 是 学生\n学生 们 在 学习\n我们 在 北京 学习\n北京 是 首都\n";
    let sentences = chaincrf::cws::parse_sighan(corpus).unwrap();
    let opts = CwsTrainOptions {
        min_freq: 1,
        lexicon_folds: 0,
        ..CwsTrainOptions::default()
    };
    let trained = train_segmenter(&sentences, &opts, &mut |_| {}).unwrap();
    let seg = chaincrf::cws::Segmenter::from_model(trained.model).unwrap();
    assert_eq!(seg.words("我们在北京学习").unwrap(), vec!["我们", "在", "北京", "学习"]);
}
