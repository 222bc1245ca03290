//! `GateConfig` from TOML: every policy parses, every number is required, unknown keys and kinds
//! are errors, out-of-range values fail validation; the online gates it builds, and replays.

use ponder_gate::{
    decide_stream, Budget, Decision, Error, GateConfig, OracleScope, PidParams, QuantileParams,
    Signal, StreamRecord,
};

fn parse(text: &str) -> Result<GateConfig, toml::de::Error> {
    toml::from_str(text)
}

#[test]
fn every_policy_parses() {
    let cases = [
        ("kind = \"skip\"", GateConfig::Skip),
        (
            "kind = \"update\"\nsteps = 2",
            GateConfig::Update { steps: 2 },
        ),
        (
            "kind = \"random\"\nseed = 42",
            GateConfig::original_random(),
        ),
        (
            "kind = \"oracle\"\nscope = \"global\"",
            GateConfig::oracle_global(),
        ),
        (
            "kind = \"oracle\"\nscope = \"per_batch\"\ngroup = 2",
            GateConfig::Oracle {
                scope: OracleScope::PerBatch,
                group: Some(2),
            },
        ),
        (
            "kind = \"oracle\"\nscope = \"unconstrained\"",
            GateConfig::Oracle {
                scope: OracleScope::Unconstrained,
                group: None,
            },
        ),
        (
            "kind = \"recon\"\nalpha = 0.1\nstep = 0.1\ncalibration = 16",
            GateConfig::original_recon(),
        ),
        (
            "kind = \"quantile\"\nsignal = \"recon_init\"\ncalibration = 16\ngain = 0.1\n\
             deadband = 2.0",
            GateConfig::Quantile(QuantileParams {
                signal: Signal::ReconInit,
                calibration: 16,
                gain: 0.1,
                deadband: 2.0,
            }),
        ),
        (
            "kind = \"signal_top_k\"\nsignal = \"recon\"",
            GateConfig::SignalTopK {
                signal: Signal::Recon,
            },
        ),
        (
            "kind = \"pid_recon\"\ncalibration = 16\nwindow = 128\nkp = 0.0\nki = 0.1\n\
             kd = 0.0\nrate_ema = 0.1\ndeadband = 4.0",
            GateConfig::PidRecon(PidParams::recommended()),
        ),
        ("kind = \"ttt_improvement\"", GateConfig::TttImprovement),
    ];
    for (text, expected) in cases {
        let config = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(config, expected, "{text}");
        assert!(config.validate().is_ok(), "{text}");
        // Serializing gives the same config back (run folders record the resolved config).
        let written = toml::to_string(&config).unwrap();
        assert_eq!(parse(&written).unwrap(), config, "{written}");
    }
}

#[test]
fn numbers_are_required() {
    for text in [
        "kind = \"update\"",
        "kind = \"random\"",
        "kind = \"oracle\"",
        "kind = \"recon\"\nalpha = 0.1\ncalibration = 16",
        "kind = \"recon\"\nstep = 0.1\ncalibration = 16",
        "kind = \"quantile\"\nsignal = \"recon\"\ncalibration = 16\ngain = 0.1",
        "kind = \"signal_top_k\"",
        "kind = \"pid_recon\"\ncalibration = 16\nwindow = 128\nkp = 0.0\nki = 0.1\nkd = 0.0\n\
         rate_ema = 0.1",
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{text}: {err}");
    }
}

#[test]
fn unknown_keys_and_kinds_are_errors() {
    for text in [
        "kind = \"recon\"\nalpha = 0.1\nstep = 0.1\ncalibration = 16\nrho = 0.5",
        "kind = \"quantile\"\nsignal = \"skip_loss\"\ncalibration = 16\ngain = 0.1\ndeadband = 2.0",
        "kind = \"random\"\nseed = 1\nrate = 0.5",
        "kind = \"pid_recon\"\ncalibration = 16\nwindow = 128\nkp = 0.0\nki = 0.1\nkd = 0.0\n\
         rate_ema = 0.1\ndeadband = 4.0\nki2 = 1.0",
        "kind = \"skip\"\nsteps = 1",
        "kind = \"ttt_improvement\"\nseed = 1",
        "kind = \"oracle\"\nscope = \"global\"\nk = 3",
        "kind = \"oracle\"\nscope = \"top\"",
        "kind = \"threshold\"",
        "alpha = 0.1",
    ] {
        assert!(parse(text).is_err(), "{text}");
    }
}

#[test]
fn out_of_range_values_fail_validation() {
    for (text, what) in [
        ("kind = \"update\"\nsteps = 0", "steps"),
        (
            "kind = \"recon\"\nalpha = 0.0\nstep = 0.1\ncalibration = 16",
            "alpha",
        ),
        (
            "kind = \"recon\"\nalpha = 0.1\nstep = 1.5\ncalibration = 16",
            "step",
        ),
        (
            "kind = \"recon\"\nalpha = 0.1\nstep = 0.1\ncalibration = 0",
            "calibration",
        ),
        (
            "kind = \"quantile\"\nsignal = \"recon\"\ncalibration = 16\ngain = 0.0\n\
             deadband = 2.0",
            "gain",
        ),
        ("kind = \"oracle\"\nscope = \"per_batch\"", "group"),
        ("kind = \"oracle\"\nscope = \"global\"\ngroup = 2", "group"),
    ] {
        let config = parse(text).unwrap();
        let err = config.validate().unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains(what)),
            "{text}: {err}"
        );
        let records = vec![
            StreamRecord {
                recon: 1.0,
                recon_init: 1.0,
                recon_after: 0.5,
                skip_loss: 2.0,
                update_loss: 1.5,
            };
            32
        ];
        // The replay validates before running.
        assert!(matches!(
            decide_stream(&config, Budget::new(0.5).unwrap(), &records),
            Err(Error::Config(_))
        ));
    }
}

#[test]
fn parsed_config_replays() {
    let config = parse("kind = \"update\"\nsteps = 4").unwrap();
    let records = vec![
        StreamRecord {
            recon: 1.0,
            recon_init: 1.0,
            recon_after: 0.5,
            skip_loss: 2.0,
            update_loss: 1.5,
        };
        4
    ];
    let trace = decide_stream(&config, Budget::new(0.5).unwrap(), &records).unwrap();
    assert_eq!(trace.decisions, [Decision::Update(4); 4]);
    assert_eq!(config.name(), "update_4");
}

#[test]
fn validate_oracle_group() {
    let cfg = |scope, group| GateConfig::Oracle { scope, group };
    assert!(cfg(OracleScope::PerBatch, Some(2)).validate().is_ok());
    assert!(cfg(OracleScope::PerBatch, None).validate().is_err());
    assert!(cfg(OracleScope::PerBatch, Some(0)).validate().is_err());
    assert!(cfg(OracleScope::Global, Some(2)).validate().is_err());
    assert!(cfg(OracleScope::Unconstrained, None).validate().is_ok());
}

#[test]
fn online_gates() {
    let b = Budget::new(0.5).unwrap();
    for config in [
        GateConfig::Skip,
        GateConfig::Update { steps: 2 },
        GateConfig::original_random(),
        GateConfig::original_recon(),
        GateConfig::pid_recommended(),
    ] {
        assert!(config.is_online());
        assert!(config.online_gate(b, None).unwrap().is_some());
    }
    assert!(GateConfig::oracle_global()
        .online_gate(b, Some(8))
        .unwrap()
        .is_none());
    assert!(GateConfig::TttImprovement
        .online_gate(b, None)
        .unwrap()
        .is_none());
    let bad = GateConfig::Recon {
        alpha: 0.0,
        step: 0.1,
        calibration: 16,
    };
    assert!(matches!(bad.online_gate(b, None), Err(Error::Config(_))));
}

#[test]
fn the_paced_gate_needs_its_horizon() {
    let config = parse("kind = \"paced\"\nsignal = \"neg_prev_loss\"\ncalibration = 1").unwrap();
    assert_eq!(config.name(), "paced_neg_prev_loss_cal1");
    let b = Budget::new(0.5).unwrap();
    assert!(config.online_gate(b, Some(10)).unwrap().is_some());
    let err = config.online_gate(b, None).err().unwrap().to_string();
    assert!(
        err.contains("paced_neg_prev_loss_cal1") && err.contains("number of decisions up front"),
        "{err}"
    );
    // A replay gives it the records' length: 3 of 6 updated, whatever the signal.
    let records: Vec<StreamRecord> = (0..6)
        .map(|i| StreamRecord {
            recon: i as f64,
            recon_init: i as f64,
            recon_after: 0.0,
            skip_loss: 2.0 + i as f64,
            update_loss: 1.5,
        })
        .collect();
    let trace = decide_stream(&config, b, &records).unwrap();
    assert_eq!(trace.n_updates(), 3);
    assert!(parse("kind = \"paced\"\nsignal = \"recon\"\ncalibration = 1\ngain = 0.1").is_err());
    // A prior: the values the history starts from, each finite.
    let with_prior = "kind = \"paced\"\nsignal = \"recon\"\ncalibration = 1\nprior = [0.5, 0.25]";
    let config = parse(with_prior).unwrap();
    assert_eq!(config.name(), "paced_recon_cal1_prior");
    // The prior's two values count towards the calibration: a window of 3 needs 1 chunk.
    assert_eq!(config.calibration(), Some(0));
    let three = parse(&with_prior.replace("calibration = 1", "calibration = 3")).unwrap();
    assert_eq!(three.calibration(), Some(1));
    assert!(config.online_gate(b, Some(10)).unwrap().is_some());
    let nan =
        parse("kind = \"paced\"\nsignal = \"recon\"\ncalibration = 1\nprior = [nan]").unwrap();
    let err = nan.online_gate(b, Some(10)).err().unwrap().to_string();
    assert!(err.contains("prior[0] = NaN"), "{err}");
}
