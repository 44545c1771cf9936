"""sigmax.torch.hf: a patched Hugging Face causal LM against the same model unpatched.

Every model is a tiny random config built in code (nothing downloaded): 2 layers, hidden 32, a
vocabulary of 256. The unpatched model is the reference: Hugging Face's own loss from its logits.
"""

import copy
import functools

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sigmax.testing import assert_close
from sigmax.torch import hf

V = 256
COMMON = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64)
GEMMA = dict(COMMON, head_dim=8, query_pre_attn_scalar=8, sliding_window=4, final_logit_softcapping=3.0)


def _configs():
    t = transformers
    return {
        "llama": lambda: t.LlamaConfig(**COMMON),
        "mistral": lambda: t.MistralConfig(**COMMON, sliding_window=4),
        "qwen2": lambda: t.Qwen2Config(**COMMON),
        "qwen3": lambda: t.Qwen3Config(**COMMON, head_dim=8),
        "gemma": lambda: t.GemmaConfig(**COMMON, head_dim=8),
        "gemma2": lambda: t.Gemma2Config(**GEMMA, attn_logit_softcapping=50.0),
        "gemma3": lambda: t.Gemma3TextConfig(**GEMMA),
        "gpt2": lambda: t.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
    }


ARCHS = list(_configs())


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on a shared machine: one thread is faster
    yield
    torch.set_num_threads(before)


def make_model(arch, *, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(_configs()[arch](), dtype=dtype)
    with torch.no_grad():
        # Random init gives logits of size ~0.1, where a softcap of 3 does nothing: scale the output
        # embedding so the logits are of size ~5 and the cap (Gemma 2/3) is exercised.
        model.get_output_embeddings().weight.mul_(40.0)
    model.train()
    return model


def batch(seed=1, shape=(2, 11)):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, shape, generator=g)
    labels = ids.clone()
    labels[0, :4] = -100  # a prompt that is not trained on
    labels[1, -2:] = -100  # padding
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    return ids, labels, mask


def run(model, **inputs):
    model.zero_grad(set_to_none=True)
    out = model(**inputs)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


def head_outputs(model):
    """Shapes of what the output embedding computes (to show the logits are never materialized)."""
    shapes = []
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    return shapes


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_and_every_gradient_match_the_unpatched_model(arch):
    ref_model = make_model(arch)
    model = hf.patch(copy.deepcopy(ref_model))
    ids, labels, mask = batch()
    ref, ref_grads = run(ref_model, input_ids=ids, attention_mask=mask, labels=labels)
    shapes = head_outputs(model)
    out, grads = run(model, input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits is None
    assert shapes == [(2, 0, V)]  # the projection ran on no token: no logits were ever computed
    assert out.loss.dtype == torch.float32
    assert_close(out.loss.detach(), ref.loss.detach(), factor=4)
    assert set(grads) == set(ref_grads) and len(grads) == len(list(model.parameters()))
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=lambda m: f"{arch} {name}: {m}")


def test_softcap_matters_for_gemma2():
    # The cap is really applied: without it the loss would be different.
    model = make_model("gemma2")
    ids, labels, mask = batch()
    with torch.no_grad():
        capped = model(input_ids=ids, labels=labels).loss
        model.config.final_logit_softcapping = None
        uncapped = model(input_ids=ids, labels=labels).loss
    assert abs(float(capped) - float(uncapped)) > 0.1
    hf.patch(model)
    with torch.no_grad():
        assert_close(model(input_ids=ids, labels=labels).loss, uncapped, factor=4)
        model.config.final_logit_softcapping = 3.0  # read at every call
        assert_close(model(input_ids=ids, labels=labels).loss, capped, factor=4)


def test_gpt2_tied_weights_get_one_gradient():
    ref_model = make_model("gpt2")
    assert ref_model.lm_head.weight is ref_model.transformer.wte.weight
    model = hf.patch(copy.deepcopy(ref_model))
    assert model.lm_head.weight is model.transformer.wte.weight
    ids, labels, _ = batch()
    _, ref_grads = run(ref_model, input_ids=ids, labels=labels)
    _, grads = run(model, input_ids=ids, labels=labels)
    torch.testing.assert_close(grads["transformer.wte.weight"], ref_grads["transformer.wte.weight"],
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gemma2"])
def test_num_items_in_batch_and_shift_labels(arch):
    ref_model = make_model(arch)
    model = hf.patch(copy.deepcopy(ref_model))
    ids, labels, _ = batch()
    n = torch.tensor(37)  # the tokens of a whole accumulated batch: the sum over this one divided by it
    ref, ref_grads = run(ref_model, input_ids=ids, labels=labels, num_items_in_batch=n)
    out, grads = run(model, input_ids=ids, labels=labels, num_items_in_batch=n)
    assert_close(out.loss.detach(), ref.loss.detach(), factor=4)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6)
    # shift_labels given instead: used as they are (no second shift)
    shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:].contiguous()
    ref = ref_model(input_ids=ids, shift_labels=shifted, labels=labels)
    out = model(input_ids=ids, shift_labels=shifted)
    assert_close(out.loss.detach(), ref.loss.detach(), factor=4)
    assert_close(model(input_ids=ids, labels=labels, num_items_in_batch=5).loss.detach(),
                 ref_model(input_ids=ids, labels=labels, num_items_in_batch=5).loss.detach(), factor=4)


def test_without_labels_the_model_is_unchanged():
    ref_model = make_model("llama")
    model = hf.patch(copy.deepcopy(ref_model))
    ids, _, mask = batch()
    ref = ref_model(input_ids=ids, attention_mask=mask)
    out = model(input_ids=ids, attention_mask=mask)
    assert type(out) is type(ref) and out.loss is None
    torch.testing.assert_close(out.logits, ref.logits, rtol=0, atol=0)
    last = model(input_ids=ids, logits_to_keep=1).logits
    assert last.shape == (2, 1, V)
    with torch.no_grad():
        gen = model.generate(ids[:1, :3], max_new_tokens=3, do_sample=False)
        gen_ref = ref_model.generate(ids[:1, :3], max_new_tokens=3, do_sample=False)
    assert torch.equal(gen, gen_ref)


def test_tuple_outputs_and_other_outputs_are_kept():
    ref_model = make_model("llama")
    model = hf.patch(copy.deepcopy(ref_model))
    ids, labels, _ = batch()
    ref = ref_model(ids, labels=labels, output_hidden_states=True)
    out = model(ids, labels=labels, output_hidden_states=True)  # input_ids positionally
    assert len(out.hidden_states) == len(ref.hidden_states) == 3
    torch.testing.assert_close(out.hidden_states[-1], ref.hidden_states[-1], rtol=0, atol=0)
    tup = model(input_ids=ids, labels=labels, return_dict=False, use_cache=False)
    assert isinstance(tup, tuple) and tup[0].ndim == 0
    assert_close(tup[0].detach(), ref.loss.detach(), factor=4)


def test_logits_to_keep_with_labels_is_refused_clearly():
    model = hf.patch(make_model("qwen2"))
    ids, labels, _ = batch()
    with pytest.raises(ValueError, match="logits_to_keep"):
        model(input_ids=ids, labels=labels, logits_to_keep=1)


def test_eval_logits_option():
    ref_model = make_model("llama").eval()
    model = hf.patch(copy.deepcopy(ref_model), eval_logits=True)
    ids, labels, _ = batch()
    out = model(input_ids=ids, labels=labels)
    assert out.logits is not None and out.logits.shape == (2, 11, V)  # eval mode: the model's own forward
    model.train()
    assert model(input_ids=ids, labels=labels).logits is None


def test_unpatch_restores_and_patch_is_per_instance():
    model = make_model("llama")
    other = make_model("llama")
    hf.patch(model)
    assert hf.is_patched(model) and not hf.is_patched(other)
    ids, labels, _ = batch()
    assert other(input_ids=ids, labels=labels).logits is not None  # the class is untouched
    hf.patch(model, chunk_size=4)  # patching again replaces the options
    assert model(input_ids=ids, labels=labels).logits is None
    assert hf.unpatch(model) is model
    assert not hf.is_patched(model) and "forward" not in model.__dict__
    out = model(input_ids=ids, labels=labels)
    assert out.logits is not None and out.loss.grad_fn.name().startswith("NllLoss")
    assert hf.unpatch(model) is model  # not patched: nothing to do


def test_unpatch_refuses_when_forward_was_wrapped_afterwards():
    model = hf.patch(make_model("llama"))
    inner = model.forward
    model.forward = lambda *a, **k: inner(*a, **k)
    with pytest.raises(RuntimeError, match="replaced after"):
        hf.unpatch(model)


def test_unsupported_architectures_are_refused():
    with pytest.raises(TypeError, match="does not support Linear.*Supported: .*LlamaForCausalLM"):
        hf.patch(torch.nn.Linear(2, 3))
    cfg = transformers.OPTConfig(vocab_size=V, hidden_size=32, ffn_dim=64, num_hidden_layers=1,
                                 num_attention_heads=4, word_embed_proj_dim=32, max_position_embeddings=64)
    with pytest.raises(TypeError, match="does not support OPTForCausalLM"):
        hf.patch(transformers.AutoModelForCausalLM.from_config(cfg))
    with pytest.raises(ValueError, match="chunk_size"):
        hf.patch(make_model("llama"), chunk_size=0)

    class Adapter(torch.nn.Linear):  # a head whose forward adds to the weight's (as LoRA's does)
        def forward(self, x):
            return super().forward(x) + 1.0

    model = make_model("llama")
    head = model.lm_head
    adapted = Adapter(head.in_features, head.out_features, bias=False)
    with pytest.raises(TypeError, match="not a plain torch.nn.Linear"):
        model.lm_head = adapted
        hf.patch(model)
    model.lm_head = head
    hf.patch(model)
    model.lm_head = adapted  # put on after patch: refused at the call
    ids, labels, _ = batch()
    with pytest.raises(TypeError, match="not a plain torch.nn.Linear"):
        model(input_ids=ids, labels=labels)


def test_bfloat16_model_and_autocast():
    ref_model = make_model("llama", dtype=torch.bfloat16)
    model = hf.patch(copy.deepcopy(ref_model))
    ids, labels, _ = batch()
    ref, ref_grads = run(ref_model, input_ids=ids, labels=labels)
    out, grads = run(model, input_ids=ids, labels=labels)
    assert out.loss.dtype == ref.loss.dtype == torch.float32
    assert_close(out.loss.detach(), ref.loss.detach(), dtype=torch.bfloat16)
    w = "lm_head.weight"
    assert grads[w].dtype == torch.bfloat16
    torch.testing.assert_close(grads[w].float(), ref_grads[w].float(), rtol=0.05, atol=0.05 * ref_grads[w].abs().max().item())
    # float32 weights under CPU autocast: the head runs in bfloat16, as the projection would
    ref_model, model = make_model("llama"), hf.patch(make_model("llama"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = ref_model(input_ids=ids, labels=labels).loss
        out = model(input_ids=ids, labels=labels).loss
    out.backward()
    assert out.dtype == torch.float32 and model.lm_head.weight.grad.dtype == torch.float32
    assert_close(out.detach(), ref.detach(), dtype=torch.bfloat16)


def test_linear_cross_entropy_loss_dtype():
    # The option the patch relies on: a half-precision head returns its float32 accumulator's loss.
    from sigmax.torch import linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    h = torch.randn(9, 8, generator=g).bfloat16().requires_grad_()
    W = torch.randn(20, 8, generator=g).bfloat16().requires_grad_()
    y = torch.randint(0, 20, (9,), generator=g)
    exact = torch.nn.functional.cross_entropy(h.detach().double() @ W.detach().double().T, y)
    for reduction in ("mean", "sum", "none"):
        lo = linear_cross_entropy(h, W, y, reduction=reduction)
        hi = linear_cross_entropy(h, W, y, reduction=reduction, loss_dtype=torch.float32)
        assert lo.dtype == torch.bfloat16 and hi.dtype == torch.float32
        assert_close(hi.detach(), lo.detach().float(), dtype=torch.bfloat16)
    hi = linear_cross_entropy(h, W, y, loss_dtype=torch.float32)
    assert abs(float(hi.detach()) - float(exact)) < 1e-5 * float(exact)  # not rounded to bfloat16
    hi.backward()
    assert h.grad.dtype == W.grad.dtype == torch.bfloat16
    with pytest.raises(TypeError, match="loss_dtype"):
        linear_cross_entropy(h, W, y, loss_dtype=torch.int64)


# --------------------------------------------------------------------------------------------
# transformers.Trainer
# --------------------------------------------------------------------------------------------


def train(arch, *, patched, tmp_path, accumulation):
    pytest.importorskip("accelerate")
    model = make_model(arch)
    seen = []
    if patched:
        hf.patch(model)
        patched_forward = model.forward

        # The signature is kept (functools.wraps): the Trainer reads it to choose the columns it passes
        # and whether to pass num_items_in_batch (only to a forward with **kwargs).
        @functools.wraps(patched_forward)
        def spy(*args, **kwargs):  # what the Trainer hands the model
            seen.append(kwargs.get("num_items_in_batch"))
            return patched_forward(*args, **kwargs)

        model.forward = spy
    g = torch.Generator().manual_seed(3)
    rows = []
    for i in range(8):
        ids = torch.randint(0, V, (12,), generator=g)
        labels = ids.clone()
        labels[: 1 + 2 * (i % 4)] = -100  # a different number of trained tokens in every row
        rows.append({"input_ids": ids, "labels": labels})
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / ("patched" if patched else "plain")), per_device_train_batch_size=2,
        gradient_accumulation_steps=accumulation, max_steps=3, learning_rate=1e-2, logging_steps=1,
        report_to=[], save_strategy="no", use_cpu=True, seed=0, dataloader_num_workers=0,
        disable_tqdm=True, optim="sgd",
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    return losses, params, seen


@pytest.mark.parametrize("accumulation", [1, 2])
def test_trainer_gives_the_same_losses_and_weights(tmp_path, accumulation):
    losses, params, _ = train("llama", patched=False, tmp_path=tmp_path, accumulation=accumulation)
    p_losses, p_params, seen = train("llama", patched=True, tmp_path=tmp_path, accumulation=accumulation)
    assert len(losses) == 3
    assert len(seen) == 3 * accumulation
    assert all(torch.is_tensor(n) and int(n) > 0 for n in seen)  # the Trainer passed num_items_in_batch
    for a, b in zip(p_losses, losses):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    for name, p in params.items():
        torch.testing.assert_close(p_params[name], p, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
