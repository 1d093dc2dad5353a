"""Transfer strategies: the ways a simple model g can help a network learn the real system f.

Each strategy says what its network is, what it trains on, where it starts and how it trains
(per member, as the stacked engine takes it: `engine.Regime`), and what model it saves. All
train in the network's units (see `NetworkSpec`); every saved model maps the user's inputs to
the user's outputs.

- fine_tune_all: the study's: start from the pretrained weights, train them all.
- l2_sp: fine-tune with alpha/2 * ||w - w_pretrained||^2 added to the loss (Li, Grandvalet and
  Davoine 2018, "Explicit inductive bias for transfer learning with convolutional networks").
- l2_sp_extrapolation: l2_sp with alpha chosen per model by how well each alpha's model predicts
  the held-out measured pairs nearest the unmeasured domain (blocked validation), by a
  one-standard-error rule that leans towards the simple model (`HeldOutAlphas.chosen`).
- lp_ft: linear probe, then fine-tune: the output layer is fitted first by least squares on
  the frozen pretrained features, then everything trains at a lower rate (Kumar et al. ICLR
  2022, "Fine-tuning can distort pretrained features and underperform out-of-distribution").
- wise_ft: the weights (1 - a) * pretrained + a * fine-tuned (Wortsman et al. CVPR 2022,
  "Robust fine-tuning of zero-shot models"), a picked by k-fold cross-validation on the real
  training pairs only; the curve over a = 0, 0.1, ..., 1 is recorded.
- freeze_k: the first k hidden layers keep their pretrained weights (surgical fine-tuning, Lee
  et al. ICLR 2023).
- residual: predict g(x) + net(x), the net trained on y - g(x) from a zero output (delta or
  hybrid modelling); no pretraining.
- g_feature: the network sees [x, g(x)] (physics-guided neural networks, Daw et al. 2017);
  no pretraining.
- multi_fidelity: the pretrained network's output y_L feeds, with x, a linear and a small
  nonlinear branch whose sum is the prediction (Meng and Karniadakis, J. Comput. Phys. 2020,
  "A composite neural network that learns from multi-fidelity data"), trained as their MfNN
  is: full batch, L2 on the nonlinear branch's kernels.

One small class per strategy: `base.Strategy` (fine_tune_all); `fine_tuning` (l2_sp,
l2_sp_extrapolation, lp_ft, wise_ft, freeze_k); `simple_model` (residual, g_feature);
`multi_fidelity`; the choices they make from their own training pairs (`selection`); the registry
by name and arm (`registry`), which every other layer uses.

The saved model of residual and g_feature evaluates g inside Keras (`nn.layers.SimpleModelLayer`): it
loads through `tlkeras.load_model` (which registers the layer) but not through plain
`keras.saving.load_model`; for those two a `<name>.net.keras` beside it holds the network
alone, which plain Keras loads (its inputs and outputs are in the network's units).
"""
