//! A program that is not a chain: a square branch added to a linear one, an
//! average pool whose `1/9` makes scales that are not powers of two, a concat
//! of three values of three scales. The batch layout decrypts to the
//! reference; the latency layout refuses it with a clear error.

use blindfold_core::{Prg, Shape};
use blindfold_fhe::files::{self, Server, ServerKeys};
use blindfold_fhe::{FheModel, FheQuant, Layout, Progress};
use blindfold_model::ir::{Conv, Dense, Model, Node, Op, Pool};

fn weights(prg: &mut Prg, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| ((prg.gen_u64() % 2001) as f32 / 1000.0) - 1.0)
        .collect()
}

fn node(name: &str, op: Op, inputs: Vec<usize>, dims: Vec<usize>) -> Node {
    Node {
        name: name.into(),
        op,
        inputs,
        shape: Shape::new(dims),
    }
}

/// Every value of the fine-precision program decodes to the float model's.
fn follows_float(m: &Model, p: &blindfold_fhe::FheProgram, xs: &[Vec<f32>]) {
    for x in xs {
        let vals = p.run_all(&p.encode_input(x).unwrap());
        for (i, n) in p.nodes.iter().enumerate() {
            let mut upto = m.clone();
            upto.output = m.nodes.iter().position(|k| k.name == n.name).unwrap();
            let want = blindfold_model::engine::run_float(&upto, x).unwrap();
            for (a, &b) in want.iter().zip(&vals[i]) {
                let b = b as f64 / n.scale;
                assert!(
                    (a - b).abs() < 5e-3 * (1.0 + a.abs()),
                    "{}: float {a} vs {b}",
                    n.name
                );
            }
        }
    }
}

fn dag() -> Model {
    let mut prg = Prg::from_seed([5; 16]);
    let conv = |prg: &mut Prg| {
        Op::Conv(Conv {
            weight: weights(prg, 2 * 9),
            c_out: 2,
            c_in: 1,
            kh: 3,
            kw: 3,
            bias: weights(prg, 2),
            stride: [1, 1],
            pads: [1, 1, 1, 1],
        })
    };
    let nodes = vec![
        node("input", Op::Input, vec![], vec![1, 4, 4]),
        node("conv_a", conv(&mut prg), vec![0], vec![2, 4, 4]),
        node("conv_b", conv(&mut prg), vec![0], vec![2, 4, 4]),
        node("square_b", Op::Square, vec![2], vec![2, 4, 4]),
        node("add", Op::Add, vec![1, 3], vec![2, 4, 4]),
        node(
            "pool",
            Op::AvgPool(Pool {
                kernel: [3, 3],
                stride: [1, 1],
                pads: [1, 1, 1, 1],
            }),
            vec![4],
            vec![2, 4, 4],
        ),
        node("concat", Op::Concat, vec![4, 5, 1], vec![6, 4, 4]),
        node("flat", Op::Reshape, vec![6], vec![96]),
        node(
            "fc",
            Op::Dense(Dense {
                weight: weights(&mut prg, 96 * 3),
                inputs: 96,
                outputs: 3,
                bias: weights(&mut prg, 3),
            }),
            vec![7],
            vec![3],
        ),
    ];
    Model {
        name: "dag".into(),
        nodes,
        output: 8,
        final_activation: None,
    }
}

#[test]
fn a_dag_with_adds_concats_and_odd_scales_is_exact_in_the_batch_layout() {
    let m = dag();
    m.validate().unwrap();
    let fm = FheModel::new(&m, FheQuant::default(), Layout::Batch).unwrap();
    let server = Server::new(fm.clone()).unwrap();
    let mut rng = Prg::from_seed([6; 16]);
    let (client, _, eval) = files::generate(&fm.profile(), &mut rng).unwrap();
    let keys = ServerKeys::for_server(&eval, &server).unwrap();
    // the corners of the input range too: the bounds are worst cases
    let mut xs: Vec<Vec<f32>> = vec![vec![0.0; 16], vec![1.0; 16]];
    xs.extend((0..4).map(|i| {
        (0..16)
            .map(|j| ((i * 7 + j * 3) % 11) as f32 / 10.0)
            .collect()
    }));
    let q = client.encrypt(&xs, &mut rng).unwrap();
    let r = server.evaluate(&keys, &q, &Progress::none()).unwrap();
    let (ys, budget) = client.decrypt(&r).unwrap();
    assert!(budget > 0);
    for (x, y) in xs.iter().zip(&ys) {
        assert_eq!(*y, fm.program.run(&fm.program.encode_input(x).unwrap()));
    }
    // and the lowering means the model: at fine precision the reference's
    // decoded values follow the float model closely on every value of the
    // program (the scale alignment of add and concat included)
    // (the square branch's scale is then about 2^25 times the other's; an
    // add aligns factors up to 2^31)
    let fine = FheQuant {
        input_bits: 12,
        weight_bits: 14,
        input_range: (0.0, 1.0),
    };
    let p = blindfold_fhe::FheProgram::lower(&m, fine).unwrap();
    follows_float(&m, &p, &xs);
    let e = FheModel::new(&m, FheQuant::default(), Layout::Latency).unwrap_err();
    assert!(e.to_string().contains("batch layout"), "{e}");
}

/// Transposed convolution, nearest upsampling and padding-free average
/// pooling lower to the same values as the float model, and run exactly.
#[test]
fn transposed_conv_and_resize_lower_like_the_float_model() {
    use blindfold_model::ir::ConvTranspose;
    let mut prg = Prg::from_seed([8; 16]);
    let nodes = vec![
        node("input", Op::Input, vec![], vec![1, 3, 3]),
        node(
            "up",
            Op::ConvTranspose(ConvTranspose {
                weight: weights(&mut prg, 2 * 3 * 3),
                c_in: 1,
                c_out: 2,
                kh: 3,
                kw: 3,
                bias: weights(&mut prg, 2),
                stride: [2, 2],
                pads: [1, 1, 1, 1],
                output_padding: [1, 1],
            }),
            vec![0],
            vec![2, 6, 6],
        ),
        node("sq", Op::Square, vec![1], vec![2, 6, 6]),
        node(
            "resize",
            Op::ResizeNearest { scale: [2, 2] },
            vec![2],
            vec![2, 12, 12],
        ),
        node(
            "pool",
            Op::AvgPool(Pool {
                kernel: [2, 2],
                stride: [2, 2],
                pads: [0, 0, 0, 0],
            }),
            vec![3],
            vec![2, 6, 6],
        ),
        node("flat", Op::Reshape, vec![4], vec![72]),
        node(
            "fc",
            Op::Dense(Dense {
                weight: weights(&mut prg, 72 * 2),
                inputs: 72,
                outputs: 2,
                bias: weights(&mut prg, 2),
            }),
            vec![5],
            vec![2],
        ),
    ];
    let m = Model {
        name: "up".into(),
        nodes,
        output: 6,
        final_activation: None,
    };
    m.validate().unwrap();
    let xs: Vec<Vec<f32>> = (0..3)
        .map(|i| (0..9).map(|j| ((i * 5 + j * 2) % 7) as f32 / 6.0).collect())
        .collect();
    let fine = FheQuant {
        input_bits: 12,
        weight_bits: 14,
        input_range: (0.0, 1.0),
    };
    let p = blindfold_fhe::FheProgram::lower(&m, fine).unwrap();
    follows_float(&m, &p, &xs);
    for layout in [Layout::Batch, Layout::Latency] {
        let fm = FheModel::new(&m, FheQuant::default(), layout).unwrap();
        let server = Server::new(fm.clone()).unwrap();
        let mut rng = Prg::from_seed([9; 16]);
        let (client, _, eval) = files::generate(&fm.profile(), &mut rng).unwrap();
        let keys = ServerKeys::for_server(&eval, &server).unwrap();
        let q = client.encrypt(&xs, &mut rng).unwrap();
        let r = server.evaluate(&keys, &q, &Progress::none()).unwrap();
        let (ys, _) = client.decrypt(&r).unwrap();
        for (x, y) in xs.iter().zip(&ys) {
            assert_eq!(
                *y,
                fm.program.run(&fm.program.encode_input(x).unwrap()),
                "{layout:?}"
            );
        }
    }
}
