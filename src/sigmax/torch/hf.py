r"""Hugging Face transformers: a causal language model's training loss without its logits.

``patch(model)`` makes a ``*ForCausalLM`` model compute its loss with
:func:`sigmax.torch.linear_cross_entropy` from the last hidden states and the output embedding
(``model.get_output_embeddings()``, tied to the input embedding or not), so the ``batch x seq x vocab``
logits, their float32 copy and their gradient never exist. ``unpatch(model)`` restores it.

What the patched model does, for each call:

* **labels** (or ``shift_labels``) given: the loss of Hugging Face's ``ForCausalLMLoss``, which is
  ``F.cross_entropy`` of the upcast logits against the labels shifted by one (``labels[..., 1:]``, the
  last position padded with ``ignore_index``), ``ignore_index=-100``; with ``num_items_in_batch`` (the
  Trainer passes it under gradient accumulation) the *sum* divided by it, else the mean; Gemma 2/3's
  ``config.final_logit_softcapping`` applied inside the fused loss. The loss is float32 (as Hugging
  Face's, which upcasts the logits) and ``outputs.logits`` is ``None``;
* no labels: the model's own forward, untouched (``generate`` and inference return logits as before).

How: the instance's ``forward`` is wrapped (the class is not touched). The wrapper calls the model's own
forward without the labels, with a forward pre-hook on the output embedding that records its input (the
last hidden states, after ``logits_to_keep``) and hands it an empty slice instead, so the projection
computes ``batch x 0 x vocab`` logits: every argument of the model's forward (``attention_mask``,
``position_ids``, ``token_type_ids``, caches, ``return_dict``, ``output_hidden_states``, ...) keeps its
meaning, and the model's other outputs (cache, hidden states, attentions) come back as they were.

Only architectures whose head is known are accepted (:data:`SUPPORTED`): the projection followed by
nothing, or by the final-logit softcap. Another architecture may scale or mask its logits after the
projection, which the fused loss would silently skip, so :func:`patch` refuses it, naming the ones it
knows.

Limits: the output embedding must be a plain ``nn.Linear`` (an adapter on it, such as LoRA on
``lm_head``, is refused: its forward adds to the weight's); a head whose weight is sharded outside its
forward (FSDP, tensor parallel) is not supported.
Under ``torch.autocast`` the hidden states and weight are cast to the autocast dtype, as the projection
would be, and the loss is computed in float32 from them.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import types

import torch
import torch.nn.functional as F

from .linear_cross_entropy import linear_cross_entropy

__all__ = ["SUPPORTED", "is_patched", "patch", "unpatch"]

#: Class name -> the config attribute that holds the final-logit softcap (``None``: the head is the
#: projection alone). Each is tested on a tiny random config against the unpatched model
#: (tests/test_hf.py): loss and every parameter's gradient.
SUPPORTED: dict[str, str | None] = {
    "LlamaForCausalLM": None,
    "MistralForCausalLM": None,
    "Qwen2ForCausalLM": None,
    "Qwen3ForCausalLM": None,
    "GemmaForCausalLM": None,
    "Gemma2ForCausalLM": "final_logit_softcapping",
    "Gemma3ForCausalLM": "final_logit_softcapping",
    "GPT2LMHeadModel": None,
}

_STATE = "_sigmax_hf_patch"  # attribute on the patched instance: the state unpatch needs
_LOSS_KWARGS = ("num_items_in_batch", "ignore_index")  # Hugging Face's loss kwargs, consumed here


class _Patch:
    """What :func:`patch` changed on one model instance, and its options."""

    def __init__(self, model, *, chunk_size, eval_logits, softcap_attr):
        self.had_forward = "forward" in model.__dict__  # an instance-level forward we wrap (kept)
        self.previous = model.__dict__.get("forward")
        self.original = model.forward  # the bound forward to call (the instance's own, or the class's)
        self.chunk_size = chunk_size
        self.eval_logits = eval_logits
        self.softcap_attr = softcap_attr
        self.signature = inspect.signature(self.original)
        self.wrapper = None


def _supported_class(model) -> str | None:
    for cls in type(model).__mro__:
        if cls.__name__ in SUPPORTED and cls.__module__.startswith("transformers."):
            return cls.__name__
    return None


def is_patched(model) -> bool:
    """Whether :func:`patch` is in force on ``model``."""
    return isinstance(model.__dict__.get(_STATE), _Patch) if hasattr(model, "__dict__") else False


def patch(model, *, chunk_size: int | None = None, eval_logits: bool = False):
    """Make ``model`` (a Hugging Face causal LM) compute its training loss with the fused loss; returns it.

    Args:
        model: an instance of one of :data:`SUPPORTED` (or a subclass of one), e.g. from
            ``AutoModelForCausalLM.from_pretrained(...)``. Patched in place; other instances of the
            class are not affected. Patching again replaces the options.
        chunk_size: tokens per chunk of :func:`sigmax.torch.linear_cross_entropy` (default: its own).
        eval_logits: in eval mode (``model.eval()``), run the model's own forward even when labels are
            given, so ``Trainer.evaluate`` with ``compute_metrics`` gets logits. Default ``False``: the
            fused loss in every mode.

    Raises:
        TypeError: ``model`` is not a supported architecture, or its output embedding is not a plain
            ``torch.nn.Linear``.
    """
    name = _supported_class(model)
    if name is None:
        known = ", ".join(sorted(SUPPORTED))
        raise TypeError(
            f"sigmax.torch.hf.patch does not support {type(model).__name__}: its head may transform the "
            f"logits after the projection (scale, cap, mask), which the fused loss would silently skip. "
            f"Supported: {known}"
        )
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral)
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or a positive integer (tokens per chunk), got {chunk_size!r}")
    _linear_head(model)
    if is_patched(model):
        unpatch(model)
    state = _Patch(model, chunk_size=chunk_size, eval_logits=bool(eval_logits),
                   softcap_attr=SUPPORTED[name])

    @functools.wraps(type(model).forward)  # inspect.signature (Trainer's column and loss-kwargs checks) sees the original
    def forward(self, *args, **kwargs):
        return _forward(self, state, args, kwargs)

    state.wrapper = types.MethodType(forward, model)
    model.forward = state.wrapper
    model.__dict__[_STATE] = state
    return model


def unpatch(model):
    """Undo :func:`patch`: ``model`` computes its loss from its logits again; returns it. No-op if not patched.

    Raises:
        RuntimeError: ``model.forward`` was replaced after :func:`patch` (e.g. by ``accelerate``'s
            mixed-precision wrapper): unpatching would remove that wrapper too.
    """
    state = model.__dict__.get(_STATE) if hasattr(model, "__dict__") else None
    if not isinstance(state, _Patch):
        return model
    if model.__dict__.get("forward") is not state.wrapper:
        raise RuntimeError(
            "model.forward was replaced after sigmax.torch.hf.patch (by accelerate, torch.compile or a "
            "wrapper of yours); unpatch the model before wrapping it, or unwrap it first"
        )
    if state.had_forward:
        model.forward = state.previous
    else:
        del model.forward
    del model.__dict__[_STATE]
    return model


def _linear_head(model) -> torch.nn.Linear:
    """The output embedding, if it is a plain ``nn.Linear`` (its forward is ``weight @ x + bias``)."""
    head = model.get_output_embeddings()
    if not (isinstance(head, torch.nn.Linear) and type(head).forward is torch.nn.Linear.forward
            and head.weight.ndim == 2):
        raise TypeError(
            f"the output embedding of {type(model).__name__} is {type(head).__name__}, not a plain "
            "torch.nn.Linear (an adapter such as LoRA on lm_head?): the fused loss would use its weight "
            "alone and skip what its forward adds; sigmax.torch.hf needs a plain linear head"
        )
    return head


def _as_keywords(signature: inspect.Signature, args, kwargs) -> dict:
    """Every argument of a call by name (the ``**kwargs`` bucket merged in)."""
    bound = signature.bind_partial(*args, **kwargs)
    out = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    return out


def _forward(model, state: _Patch, args, kwargs):
    call = _as_keywords(state.signature, args, kwargs)
    labels = call.pop("labels", None)
    shift_labels = call.pop("shift_labels", None)
    if (labels is None and shift_labels is None) or (state.eval_logits and not model.training):
        return state.original(*args, **kwargs)
    num_items = call.pop("num_items_in_batch", None)
    ignore_index = call.pop("ignore_index", -100)
    return_dict = call.pop("return_dict", None)
    if return_dict is None:
        return_dict = getattr(model.config, "return_dict", True)

    head = _linear_head(model)  # again at every call: an adapter may have been put on it since patch
    seen = []

    def capture(module, inputs):
        # Record the last hidden states and give the projection an empty slice of tokens instead: the
        # logits it computes are (..., 0, V), no memory, and what the forward does after it (softcap,
        # casts) runs on nothing.
        (hidden,) = inputs
        seen.append(hidden)
        return (hidden[..., :0, :] if hidden.ndim >= 2 else hidden[:0],)

    handle = head.register_forward_pre_hook(capture)
    try:
        out = state.original(**call, return_dict=True)
    finally:
        handle.remove()
    if len(seen) != 1:
        raise RuntimeError(f"the output embedding of {type(model).__name__} ran {len(seen)} times in one forward "
                           "(expected once); sigmax.torch.hf.patch cannot take its hidden states")
    hidden = seen[0]
    loss = _loss(model, state, hidden, head, labels, shift_labels, num_items, ignore_index)

    fields = {k: v for k, v in out.items() if k not in ("loss", "logits")}
    result = type(out)(loss=loss, **fields)  # logits: None (never computed)
    return result if return_dict else result.to_tuple()


def _loss(model, state: _Patch, hidden, head, labels, shift_labels, num_items, ignore_index):
    if shift_labels is None:
        # Hugging Face's shift: position t predicts label t + 1; the last position has no target.
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    shift_labels = shift_labels.to(hidden.device)
    if tuple(shift_labels.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(
            f"labels give targets of shape {tuple(shift_labels.shape)} but the model kept hidden states of "
            f"shape {tuple(hidden.shape[:-1])} (logits_to_keep?); the loss needs one target per kept position"
        )
    weight = head.weight
    bias = head.bias
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        # The projection would run in the autocast dtype: cast as it would, and run the fused loss (which
        # computes in float32 from there) outside autocast, whose casts would break its float32 buffers.
        dtype = torch.get_autocast_dtype(device_type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    softcap = None if state.softcap_attr is None else getattr(model.config, state.softcap_attr, None)
    with torch.autocast(device_type, enabled=False):
        loss = linear_cross_entropy(
            hidden, weight, shift_labels, bias=bias, ignore_index=ignore_index,
            reduction="mean" if num_items is None else "sum", softcap=softcap,
            chunk_size=state.chunk_size, loss_dtype=torch.float32,
        )
    if num_items is not None:
        # fixed_cross_entropy: the sum over this micro-batch divided by the tokens of the whole batch
        loss = loss / (num_items.to(loss.device) if torch.is_tensor(num_items) else num_items)
    return loss
