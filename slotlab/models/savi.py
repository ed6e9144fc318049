"""SAVi: Slot Attention for Video (Kipf et al., ICLR 2022, "Conditional Object-Centric Learning from Video").

Per frame t: a CNN encoder (:class:`~slotlab.modules.frame_encoder.FrameEncoder`) turns the frame into tokens; the
*corrector*, Slot Attention (:class:`~slotlab.modules.slot_attention.SlotAttention`, 1 iteration), updates the
slots from them; the *predictor* (:mod:`slotlab.modules.predictors`, a transformer block over the slots) maps the
corrected slots to the initial slots of frame t + 1. The corrected slots of every frame are decoded by a spatial
broadcast decoder (:class:`~slotlab.modules.video_decoder.VideoBroadcastDecoder`) into the targets (RGB and/or
optical flow) and one alpha mask per slot. The initial slots of frame 0 come from
:class:`~slotlab.modules.slot_init.SlotInitializer`: first-frame boxes or centre points through an MLP
(conditional), or learned / sampled (unconditional). Encoder and decoder run on all frames at once (B*T and B*T*K
folded into the batch); the recurrence over T is the only loop.

Defaults are SAVi-S's (``savi/configs/movi/savi_conditional_small.py`` of google-research/slot-attention-video; the
facts, with the files they come from, are in docs/video.md, "SAVi facts"):

| setting | SAVi-S (official config / code) | our default | why |
|---|---|---|---|
| image size | 64x64 (MOVi's 128x128, ``resize_small(64)``) | ``resolution=(64, 64)`` | SAVi-S's |
| slots | one per box + background: 24 (MOVi-D/E), 11 (A..C) | boxes + 1; unconditional 11 | SAVi-S's; A..C: 10 + 1 |
| clip length | train 6; eval 24 in slices of 6, state carried | any T; ``state=out.next_state`` | the task's / data's |
| slot size | 128 | ``slot_dim=128`` | SAVi-S's |
| encoder | 4 x Conv 5x5 32 ch ReLU; pos. emb.; LN + MLP 32-64-32 | the same | SAVi-S's |
| corrector | Slot Attention: 1 iter., qkv 128, GRU, no MLP | the same | SAVi-S's |
| predictor | transformer block: 4 heads, qkv 128, MLP 256, post-LN | the same; or mlp, identity | SAVi-S's; ablations |
| decoder | 8x8; 3 x ConvT 5x5 s2 + Conv 5x5, 64 ch; alpha + flow(3) | the same; ``targets=`` any | SAVi-S's |
| init | boxes -> MLP 4-256-128, background box prepended | ``init="boxes"`` | SAVi-S's |
| loss | squared error summed over T, C, H, W; batch mean | ``loss(reduction="sum")`` | SAVi-S's |
| optimiser | Adam 2e-4; warmup from 0 over 2,500; cosine to 0 at 100k | the preset's | not a model setting |
| grad clipping | global norm 0.05 | the preset's | ditto |
| batch size | 64 | the preset's | ditto |
| steps | 100,000 | the preset's | ditto |

Named deviations (parametrisation or evaluation order, the same function family): the position grids are
slotlab's (y, x, 1 - y, 1 - x) in [0, 1] where SAVi's are (y, x) in [-1, 1] (both give every affine function of the
position); torch's GRUCell has two more (redundant) bias vectors than flax's (zero at the start, as flax's);
``slotlab train`` starts from flax's initialisation (``model.weight_init: flax``, :mod:`slotlab.modules.init`),
this constructor from torch's defaults; the decoder's two Dense readouts are one 1x1
convolution. The video is in [-1, 1] (slotlab's convention; SAVi's is [0, 1]), which scales the summed loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slotlab.checks import InputShapeError, float_input, none_or_positive, require_nonempty
from slotlab.modules.attention_masks import mix_with_attention
from slotlab.modules.box_attention import box_logit_bias
from slotlab.modules.frame_encoder import FLAX_LAYER_NORM_EPS, FrameEncoder
from slotlab.modules.mask_entropy import mask_entropy
from slotlab.modules.predictors import build_predictor
from slotlab.modules.slot_attention import SlotAttention, _check_positive
from slotlab.modules.slot_init import SlotInitializer
from slotlab.modules.video_decoder import VideoBroadcastDecoder, savi_decoder_strides

VIDEO_HINT = "; for 0..255 pixels (uint8) pass video.float() / 127.5 - 1"


@dataclass
class SAViOutput:
    """What :meth:`SAVi.forward` returns (K slots of size D, N = encoder tokens, C = target channels)."""

    slots: Tensor  # [B, T, K, D] corrected slots of every frame (the ones decoded)
    predicted: Tensor  # [B, T, K, D] the predictor's output after every frame (frame t + 1's initial slots)
    init_slots: Tensor  # [B, K, D] the initial slots of frame 0
    recon: Tensor  # [B, T, C, H, W] the targets, mixed with the masks
    recons: Tensor  # [B, T, K, C, H, W] per-slot targets
    masks: Tensor  # [B, T, K, H, W] alpha masks, softmax over the slots
    attn: Tensor  # [B, T, K, N] the corrector's attention (its last iteration), softmax over the slots
    targets: tuple[tuple[str, int], ...]  # the target names and their channels, in the order of recon's C
    entropy_weight: float = 0.0  # the loss's weight of the masks' entropy (model.mask_entropy; 0: SAVi's loss)

    def target(self, name: str) -> Tensor:
        """The channels of target ``name`` in ``recon``: [B, T, C_name, H, W]."""
        start = 0
        for key, c in self.targets:
            if key == name:
                return self.recon[:, :, start : start + c]
            start += c
        raise KeyError(f"no target {name!r}; the model reconstructs {[k for k, _ in self.targets]}")

    @property
    def next_state(self) -> Tensor:
        """[B, K, D] the state to continue from on the next clip of the same videos (SAVi's sliced evaluation)."""
        return self.predicted[:, -1]


class SAVi(nn.Module):
    """Slot Attention for Video (see the module docstring; the defaults are SAVi-S's).

    Args:
        resolution: frame (H, W).
        num_slots: K of the unconditional initialisations (conditional ones have one slot per box, + 1).
        slot_dim: D.
        init: initial slots: ``"boxes"``, ``"points"`` (conditional), ``"learned"``, ``"gaussian"`` or
            ``"standard_normal"`` (:mod:`slotlab.modules.slot_init`).
        init_hidden: hidden size of the conditional init's MLP (256).
        prepend_background: conditional init: add a background slot before the boxes' (True).
        absent_slots: conditional init: the slots of absent objects (zero boxes), ``"box"`` (SAVi: encoded like
            any box) or ``"learned"`` (one learned slot per box position; not in SAVi).
        max_boxes: box positions of ``absent_slots="learned"`` (the data's objects per video at most).
        encoder_channels, encoder_strides: the per-frame CNN (32 x 4, stride 1).
        encoder_hidden: hidden size of the encoder's output MLP (64).
        encoder_out: its output size (``None``: the CNN's channels, 32).
        position_embedding: add the encoder's position embedding (True).
        corrector_iters: Slot Attention iterations per frame (1).
        first_frame_iters: iterations on the first frame of a clip that starts from the initial slots (``None``:
            ``corrector_iters``, SAVi); a clip continuing from ``state`` runs ``corrector_iters`` on every frame.
        mask_entropy: ``None`` (SAVi's loss) or the weight of the masks' per-pixel entropy over the slots added to
            the loss (not in SAVi; :mod:`slotlab.modules.mask_entropy`).
        attention_masks: ``None`` (SAVi) or w > 0: the masks are softmax over the slots of the decoder's alpha logits
            + w x log of the corrector's last attention, so they follow the inputs' features (not in SAVi;
            :mod:`slotlab.modules.attention_masks`).
        box_attention: ``None`` (SAVi) or beta > 0 (``init="boxes"`` only): on the first frame of a clip that starts
            from the initial slots, the corrector's attention logits of an object's slot are lowered by beta outside
            its box (the background slot unbiased; not in SAVi; :mod:`slotlab.modules.box_attention`).
        corrector_mlp: hidden size of the corrector's residual MLP after the GRU; ``None`` (SAVi-S): no MLP.
        corrector_evidence_gate: ``None`` (SAVi) or c > 0: the corrector's change of a slot is scaled by m / (m + c),
            m the inputs the slot holds (its attention summed over the frame's inputs); a slot that holds none (an
            occluded object's) keeps the predictor's slot. Not in SAVi (:class:`SlotAttention` ``evidence_gate``).
        corrector_implicit_differentiation: False (SAVi) or True: on every frame the corrector's iterations but the
            last run without a gradient and the last one's input slots pass it straight through to the frame's
            initial slots (BO-QSA's bi-level scheme, Jia et al. 2023; :class:`SlotAttention`
            ``implicit_differentiation``). With one iteration per frame nothing changes; with
            ``first_frame_iters`` > 1 it is BO-QSA on the first frame. Not in SAVi.
        corrector: further :class:`SlotAttention` options (default ``eps_placement="denominator"``, SAVi's; with
            ``"attn"`` the fused attention path runs, a 1e-8-sized change of the normaliser).
        predictor: ``"transformer"``, ``"mlp"`` or ``"identity"``.
        predictor_heads, predictor_mlp, predictor_pre_norm: the transformer block (4 heads, MLP 256, post-norm); the
            MLP predictor's hidden size is ``predictor_mlp`` too.
        decoder_channels: the decoder CNN's channels (64 x 4).
        decoder_strides: their strides (``None``: SAVi's layout for the resolution, 64 -> 2, 2, 2, 1).
        broadcast_resolution: the decoder's grid (``None``: the resolution divided by the strides' product).
        decoder_fourier_bands: Fourier features of the decoder's grid (0, SAVi's linear grid; not in SAVi).
        targets: the decoded targets and their channels, in order (SAVi-S: ``{"flow": 3}``, flow as RGB).
        layer_norm_eps: epsilon of every LayerNorm (flax's default 1e-6).
    """

    def __init__(
        self,
        resolution: Sequence[int] = (64, 64),
        num_slots: int = 11,
        slot_dim: int = 128,
        init: str = "boxes",
        init_hidden: int = 256,
        prepend_background: bool = True,
        absent_slots: str = "box",
        max_boxes: int = 10,
        encoder_channels: Sequence[int] = (32, 32, 32, 32),
        encoder_strides: Sequence[int] = (1, 1, 1, 1),
        encoder_hidden: int = 64,
        encoder_out: int | None = None,
        position_embedding: bool = True,
        corrector_iters: int = 1,
        first_frame_iters: int | None = None,
        mask_entropy: float | None = None,
        attention_masks: float | None = None,
        box_attention: float | None = None,
        corrector_mlp: int | None = None,
        corrector_evidence_gate: float | None = None,
        corrector_implicit_differentiation: bool = False,
        corrector: Mapping[str, Any] | None = None,
        predictor: str = "transformer",
        predictor_heads: int = 4,
        predictor_mlp: int = 256,
        predictor_pre_norm: bool = False,
        decoder_channels: Sequence[int] = (64, 64, 64, 64),
        decoder_strides: Sequence[int] | None = None,
        broadcast_resolution: Sequence[int] | None = None,
        targets: Mapping[str, int] | None = None,
        layer_norm_eps: float = FLAX_LAYER_NORM_EPS,
        decoder_fourier_bands: int = 0,
    ) -> None:
        super().__init__()
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.targets: tuple[tuple[str, int], ...] = tuple((targets or {"flow": 3}).items())
        if not self.targets or any(int(c) < 1 for _, c in self.targets):
            raise ValueError(f"targets must name at least one target with >= 1 channels, got {dict(self.targets)}")
        self.initializer = SlotInitializer(
            init, slot_dim, num_slots, init_hidden, prepend_background, absent=absent_slots, max_boxes=max_boxes
        )
        self.encoder = FrameEncoder(
            self.resolution,
            encoder_channels,
            encoder_strides,
            encoder_hidden,
            encoder_out,
            position_embedding,
            layer_norm_eps,
        )
        options: dict[str, Any] = {
            "eps_placement": "denominator",
            "evidence_gate": corrector_evidence_gate,
            "implicit_differentiation": bool(corrector_implicit_differentiation),
            **(corrector or {}),
        }
        self.corrector = SlotAttention(
            1,  # the slots always come from the initializer or the predictor
            dim=slot_dim,
            input_dim=self.encoder.out_dim,
            iters=corrector_iters,
            hidden_dim=corrector_mlp or 1,
            mlp=corrector_mlp is not None,
            slot_init="queries",
            layer_norm_eps=layer_norm_eps,
            **options,
        )
        # The corrector's own initial slot is never used (it anchors the module's dtype): no gradient, no update.
        self.corrector.slots_mu.requires_grad_(False)
        if corrector_mlp is None:
            self.corrector.norm_mlp = nn.Identity()  # no MLP, so no LayerNorm before it
        self.predictor = build_predictor(
            predictor, slot_dim, predictor_heads, predictor_mlp, predictor_pre_norm, layer_norm_eps
        )
        strides = (
            tuple(decoder_strides)
            if decoder_strides is not None
            else savi_decoder_strides(self.resolution, layers=len(decoder_channels))
        )
        up = 1
        for s in strides:
            up *= s
        if broadcast_resolution is None:
            if self.resolution[0] % up or self.resolution[1] % up:
                raise ValueError(f"decoder strides {strides} do not divide the resolution {self.resolution}")
            broadcast_resolution = (self.resolution[0] // up, self.resolution[1] // up)
        self.decoder = VideoBroadcastDecoder(
            slot_dim,
            tuple(broadcast_resolution),
            decoder_channels,
            strides,
            sum(int(c) for _, c in self.targets),
            fourier_bands=decoder_fourier_bands,
        )
        if self.decoder.output_resolution != self.resolution:
            raise ValueError(
                f"the decoder draws {self.decoder.output_resolution} ({tuple(broadcast_resolution)} x strides "
                f"{strides}), not the resolution {self.resolution}"
            )
        self.slot_dim = slot_dim
        if first_frame_iters is not None:
            _check_positive("first_frame_iters", first_frame_iters)
        self.first_frame_iters = first_frame_iters
        self.mask_entropy = mask_entropy
        self.attention_masks = none_or_positive("attention_masks", attention_masks)
        self.box_attention = none_or_positive("box_attention", box_attention)
        if box_attention is not None and init != "boxes":
            raise ValueError(f"box_attention needs the first-frame boxes (init 'boxes'), not init {init!r}")

    @property
    def conditional(self) -> bool:
        return self.initializer.conditional

    def forward(
        self,
        video: Tensor,
        conditioning: Tensor | None = None,
        state: Tensor | None = None,
        num_slots: int | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> SAViOutput:
        """Track slots through ``video``.

        Args:
            video: [B, T, 3, H, W] float in [-1, 1].
            conditioning: first-frame boxes [B, K, 4] (ymin, xmin, ymax, xmax in [0, 1]) or points [B, K, 2] (y, x),
                or the same per frame ([B, T, K, 4|2]; frame 0 is used); required by the conditional inits.
            state: [B, K, D] slots to continue from (``out.next_state`` of the previous clip); the initialisation is
                skipped and ``conditioning`` is not needed.
            num_slots: K for the sampled unconditional inits (default: the constructor's).
            noise: N(0, 1) samples [B, K, D] for the sampled inits (instead of drawing them).
            generator: the random generator the sampled inits draw from.
        """
        dtype = self.corrector.project_q.weight.dtype
        h, w = self.resolution
        video = float_input(video, "video", dtype, f"[B, T, 3, {h}, {w}] scaled to [-1, 1]", VIDEO_HINT)
        if video.dim() != 5 or video.shape[2] != 3 or tuple(video.shape[-2:]) != (h, w):
            raise InputShapeError(f"video must be [B, T, 3, {h}, {w}], got {tuple(video.shape)}")
        require_nonempty(video, "video", f"[B, T, 3, {h}, {w}]", (0, 1))
        b, t = video.shape[:2]

        if state is None:
            slots = self.initializer(
                b, conditioning, num_slots, noise, generator, device=video.device, dtype=dtype
            )  # [B, K, D]
        else:
            slots = float_input(state, "state", dtype, f"[B, K, {self.slot_dim}] of slots (out.next_state)")
            if slots.dim() != 3 or slots.shape[0] != b or slots.shape[-1] != self.slot_dim:
                raise InputShapeError(f"state must be [{b}, K, {self.slot_dim}], got {tuple(slots.shape)}")
        init_slots = slots

        frames = video.reshape(b * t, 3, h, w)  # [B*T, 3, H, W]
        if self._channels_last():
            frames = frames.contiguous(memory_format=torch.channels_last)
        inputs = self.encoder(frames)  # [B*T, N, D_in]
        inputs = inputs.view(b, t, *inputs.shape[1:])  # [B, T, N, D_in]

        corrected, predicted, attns = [], [], []
        # A clip that starts from the initial slots may correct its first frame longer (first_frame_iters) and
        # with its attention kept to the slots' boxes (box_attention).
        first_iters = self.first_frame_iters if state is None else None
        first_bias = None
        if self.box_attention is not None and state is None:
            assert conditioning is not None  # the initializer refused a conditional model without it
            first_bias = box_logit_bias(
                conditioning, self.encoder.feature_resolution, self.initializer.prepend_background, self.box_attention
            )  # [B, K, N]
        for i in range(t):  # the recurrence: the only loop
            sa = self.corrector(
                inputs[:, i],
                slots=slots,
                iters=first_iters if i == 0 else None,
                logit_bias=first_bias if i == 0 else None,
            )
            corrected.append(sa.slots)  # [B, K, D]
            attns.append(sa.attn[:, -1])  # [B, K, N]
            slots = self.predictor(sa.slots).to(dtype)  # [B, K, D], the state carried in the parameters' dtype
            predicted.append(slots)
        slots_t = torch.stack(corrected, dim=1)  # [B, T, K, D]
        k = slots_t.shape[2]

        attn = torch.stack(attns, dim=1)  # [B, T, K, N]
        dec = self.decoder(slots_t.reshape(b * t, k, self.slot_dim))
        recon, masks = dec.recon, dec.masks  # [B*T, C, H, W], [B*T, K, H, W]
        if self.attention_masks is not None:  # masks that follow the inputs (not in SAVi)
            grid = self.encoder.feature_resolution
            recon, masks = mix_with_attention(
                dec.alpha_logits, dec.recons, attn.reshape(b * t, k, -1), grid, self.attention_masks
            )
        return SAViOutput(
            slots=slots_t,
            predicted=torch.stack(predicted, dim=1),  # [B, T, K, D]
            init_slots=init_slots,
            recon=recon.view(b, t, *recon.shape[1:]),  # [B, T, C, H, W]
            recons=dec.recons.view(b, t, *dec.recons.shape[1:]),  # [B, T, K, C, H, W]
            masks=masks.view(b, t, *masks.shape[1:]),  # [B, T, K, H, W]
            attn=attn,
            targets=self.targets,
            entropy_weight=self.mask_entropy or 0.0,
        )

    def _channels_last(self) -> bool:
        weight = self.encoder.cnn.net[0].weight
        return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()

    @staticmethod
    def loss(out: SAViOutput, target: Tensor, reduction: str = "sum") -> Tensor:
        """Squared error of ``out.recon`` against ``target`` [B, T, C, H, W] (the targets concatenated in the
        model's order). ``"sum"`` (SAVi's ``recon`` loss): summed over T, C, H, W, averaged over the batch;
        ``"mean"``: averaged over everything (slotlab's image models' MSE). Where ``out.entropy_weight`` is set
        (``mask_entropy``), plus that weight x the masks' per-pixel entropy over the slots, reduced alike: summed
        over T, H, W and averaged over the batch (``"sum"``) or averaged over everything (``"mean"``)."""
        if target.shape != out.recon.shape:
            raise InputShapeError(
                f"target must be {list(out.recon.shape)} like the reconstruction, got {tuple(target.shape)}"
            )
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        if reduction == "sum":
            loss = F.mse_loss(out.recon, target.float(), reduction="sum") / target.shape[0]
        else:
            loss = F.mse_loss(out.recon, target.float())
        if out.entropy_weight:
            entropy = mask_entropy(out.masks, slot_dim=2)  # mean over B, T, H, W
            pixels = out.masks[:, :, 0].numel() / out.masks.shape[0] if reduction == "sum" else 1  # T * H * W
            loss = loss + out.entropy_weight * pixels * entropy
        return loss
