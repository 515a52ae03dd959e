//! Crafted ONNX graphs with absurd attributes: clear errors, never a panic or an
//! accepted bogus geometry (found by review; see docs/SECURITY.md).

mod common;

use common::{a_int, a_ints, f_init, ints_init, model, node};
use onnx_protobuf::*;

/// The importer must return an error (never panic, never accept) on each case.
fn must_reject(what: &str, bytes: Vec<u8>) {
    let r =
        std::panic::catch_unwind(|| blindfold_model::onnx::import_onnx(&bytes, "t").map(|_| ()));
    match r {
        Ok(Err(e)) => assert!(!e.to_string().is_empty(), "{what}"),
        Ok(Ok(())) => panic!("{what}: a crafted graph was accepted"),
        Err(_) => panic!("{what}: the importer panicked"),
    }
}

/// Valid but extreme: may import, must not panic.
fn must_not_panic(what: &str, bytes: Vec<u8>) {
    let r =
        std::panic::catch_unwind(|| blindfold_model::onnx::import_onnx(&bytes, "t").map(|_| ()));
    assert!(r.is_ok(), "{what}: the importer panicked");
}

#[test]
fn crafted_attributes_are_errors_not_panics() {
    must_reject(
        "const concat axis=3",
        model(
            vec![
                node("Concat", &["a", "b"], "c", vec![a_int("axis", 3)]),
                node("Relu", &["x"], "y", vec![]),
                node("Identity", &["c"], "unused", vec![]),
            ],
            vec![ints_init("a", &[2], &[1, 2]), ints_init("b", &[2], &[3, 4])],
            &[1, 1, 4, 4],
        ),
    );
    let m = i64::MAX;
    must_reject(
        "conv huge pads",
        model(
            vec![node(
                "Conv",
                &["x", "w"],
                "y",
                vec![a_ints("pads", &[m, 0, m, 0])],
            )],
            vec![f_init("w", &[1, 1, 3, 3], &[0.1; 9])],
            &[1, 1, 8, 8],
        ),
    );
    must_not_panic(
        "const slice huge step",
        model(
            vec![
                node("Slice", &["a", "s", "e", "ax", "st"], "c", vec![]),
                node("Add", &["x", "c"], "y", vec![]),
            ],
            vec![
                ints_init("a", &[4], &[1, 2, 3, 4]),
                ints_init("s", &[1], &[1]),
                ints_init("e", &[1], &[4]),
                ints_init("ax", &[1], &[0]),
                ints_init("st", &[1], &[i64::MAX]),
            ],
            &[1, 1, 4, 4],
        ),
    );
    must_reject(
        "const concat ranks",
        model(
            vec![
                node("Concat", &["a", "b"], "c", vec![a_int("axis", 1)]),
                node("Relu", &["x"], "y", vec![]),
                node("Identity", &["c"], "unused", vec![]),
            ],
            vec![
                ints_init("a", &[1, 2], &[1, 2]),
                ints_init("b", &[2], &[3, 4]),
            ],
            &[1, 1, 4, 4],
        ),
    );
    must_reject(
        "convtranspose huge stride",
        model(
            vec![node(
                "ConvTranspose",
                &["x", "w"],
                "y",
                vec![a_ints("strides", &[1i64 << 62, 1])],
            )],
            vec![f_init("w", &[1, 1, 3, 3], &[0.1; 9])],
            &[1, 1, 8, 8],
        ),
    );
    must_reject(
        "huge empty initializer",
        model(
            vec![
                node("Slice", &["a", "s", "e"], "c", vec![]),
                node("Add", &["x", "c"], "y", vec![]),
            ],
            vec![
                ints_init("a", &[1 << 40, 0], &[]),
                ints_init("s", &[1], &[0]),
                ints_init("e", &[1], &[5]),
            ],
            &[1, 1, 4, 4],
        ),
    );
}

/// Found by fuzzing (`fuzz/corpus/onnx/regress-folding-*`): a 3 KB model
/// whose `ConstantOfShape` feeds `Pad` arithmetic made the importer hold 10 to
/// 20 GB of folded constants. All folding of one model is now bounded, and
/// checked before allocating where an output can outgrow its inputs.
/// The importer must refuse with an error that says `why`.
fn must_reject_for(what: &str, why: &str, bytes: Vec<u8>) {
    match blindfold_model::onnx::import_onnx(&bytes, "t") {
        Err(e) => assert!(e.to_string().contains(why), "{what}: {e}"),
        Ok(_) => panic!("{what}: a crafted graph was accepted"),
    }
}

#[test]
fn constant_folding_is_bounded() {
    let budget = "exceeds what folding may produce";
    let shape = |name: &str, v: &[i64]| ints_init(name, &[v.len() as i64], v);
    let fill = || node("ConstantOfShape", &["s"], "c", vec![]);
    // One constant past the budget: refused before it is allocated.
    must_reject_for(
        "a huge ConstantOfShape",
        budget,
        model(vec![fill()], vec![shape("s", &[1 << 24, 2])], &[1, 1]),
    );
    // Constants within the budget one by one, past it together.
    must_reject_for(
        "a chain of large folded constants",
        budget,
        model(
            vec![
                fill(),
                node("Add", &["c", "c"], "d", vec![]),
                node("Add", &["d", "c"], "e", vec![]),
            ],
            vec![shape("s", &[1 << 23])],
            &[1, 1],
        ),
    );
    // Broadcasting two small constants into a huge one.
    must_reject_for(
        "a broadcasting Mul",
        budget,
        model(
            vec![
                node("ConstantOfShape", &["s1"], "a", vec![]),
                node("ConstantOfShape", &["s2"], "b", vec![]),
                node("Mul", &["a", "b"], "c", vec![]),
            ],
            vec![shape("s1", &[1 << 12, 1]), shape("s2", &[1, 1 << 13])],
            &[1, 1],
        ),
    );
    // Concatenated parts whose other dimensions differ: refused, not a constant
    // whose data does not fill its shape (which the next fold indexed past).
    must_reject_for(
        "a ragged Concat",
        "other dimensions differ",
        model(
            vec![
                node("Concat", &["p", "q"], "c", vec![a_int("axis", 0)]),
                node("Add", &["c", "c"], "d", vec![]),
            ],
            vec![
                ints_init("p", &[1, 3], &[1, 2, 3]),
                ints_init("q", &[1, 1], &[4]),
            ],
            &[1, 1],
        ),
    );
}

fn a_str(name: &str, v: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = protobuf::EnumOrUnknown::new(attribute_proto::AttributeType::STRING);
    a.s = v.as_bytes().to_vec();
    a
}

/// A nearest-neighbour Resize is imported only when ONNX's rule reads input
/// `floor(o / s)` for output `o`, the kernel's rule. Other combinations of
/// coordinate_transformation_mode and nearest_mode used to import as if they
/// were that one (onnxruntime reads another pixel for them); what the
/// exporters write (asymmetric + floor) and the ONNX defaults still import.
#[test]
fn resize_must_read_the_floor_neighbour() {
    let resize = |ctm: Option<&str>, nearest: Option<&str>, s: f32| {
        let mut attrs = vec![a_str("mode", "nearest")];
        attrs.extend(ctm.map(|v| a_str("coordinate_transformation_mode", v)));
        attrs.extend(nearest.map(|v| a_str("nearest_mode", v)));
        model(
            vec![node("Resize", &["x", "roi", "scales"], "y", attrs)],
            vec![
                f_init("roi", &[0], &[]),
                f_init("scales", &[4], &[1.0, 1.0, s, s]),
            ],
            &[1, 1, 3, 3],
        )
    };
    let import = |b: Vec<u8>| blindfold_model::onnx::import_onnx(&b, "t");
    for (ctm, nearest, s) in [
        (Some("asymmetric"), Some("floor"), 2.0),
        (Some("asymmetric"), Some("floor"), 3.0),
        (None, None, 2.0),
        (None, None, 3.0),
        (Some("pytorch_half_pixel"), Some("round_prefer_ceil"), 2.0),
        (Some("tf_half_pixel_for_nn"), Some("floor"), 2.0),
    ] {
        let m = import(resize(ctm, nearest, s))
            .unwrap_or_else(|e| panic!("{ctm:?} {nearest:?} {s}: {e}"));
        assert_eq!(
            m.output_shape().dims(),
            &[1, 3 * s as usize, 3 * s as usize]
        );
    }
    for (ctm, nearest, s) in [
        (Some("asymmetric"), Some("ceil"), 2.0),
        (Some("asymmetric"), Some("round_prefer_floor"), 3.0),
        (Some("half_pixel"), Some("floor"), 2.0),
        (Some("tf_half_pixel_for_nn"), None, 2.0),
    ] {
        must_reject_for(
            &format!("{ctm:?} {nearest:?} {s}"),
            "does not read input floor(o / scale)",
            resize(ctm, nearest, s),
        );
    }
    must_reject_for(
        "unknown nearest_mode",
        "nearest_mode 'nearest' is not supported",
        resize(Some("asymmetric"), Some("nearest"), 2.0),
    );
    // A one-pixel axis reads its only pixel whatever the rule.
    let one = model(
        vec![node(
            "Resize",
            &["x", "roi", "scales"],
            "y",
            vec![
                a_str("mode", "nearest"),
                a_str("coordinate_transformation_mode", "asymmetric"),
                a_str("nearest_mode", "ceil"),
            ],
        )],
        vec![
            f_init("roi", &[0], &[]),
            f_init("scales", &[4], &[1.0, 1.0, 2.0, 2.0]),
        ],
        &[1, 1, 1, 1],
    );
    import(one).unwrap();
}
