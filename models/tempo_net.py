"""The learned beat tracker's front end: log-mel features and a small TCN.

A temporal convolutional network in the style of Davies & Böck (2019): the
log-mel spectrogram and its half-wave rectified difference go through one
convolution, then residual blocks of dilated 1-D convolutions (dilation doubling
per block, about 5 s of context either side), and a 1x1 head that gives a beat
and a downbeat activation per frame (logits).

Padding invariance: every layer's output is multiplied by the clip's frame
mask, so the frames past a clip's end are zeros in a batch exactly as the
convolutions' own zero padding is for the clip alone.  The features are scaled
by each clip's own maximum (masked), so the recording level does not matter.

Weights are a safetensors file (no pickle), with the architecture in its
metadata; ``bench/tempo/train.py`` writes it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .tempo_masked import frame_mask, masked_max
from .tempo_onset import OnsetConfig, mel_filterbank, stft_power

__all__ = ["FEATURES", "WEIGHTS", "BeatTCN", "NetConfig", "load_net", "log_mel", "save_net"]

#: 50 frames/s at 22,050 Hz: 20 ms frames, the resolution of BeatNet; a 46 ms window
FEATURES = OnsetConfig(sample_rate=22050, n_fft=1024, hop=441, n_mels=64, fmin_hz=30.0, fmax_hz=11025.0,
                       floor_db=80.0)
WEIGHTS = Path(__file__).with_name("tempo_net.safetensors")


@dataclass(frozen=True, slots=True)
class NetConfig:
    n_mels: int = 64
    channels: int = 24
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    dropout: float = 0.1


def log_mel(audio: torch.Tensor, lengths: torch.Tensor, mel: torch.Tensor,
            cfg: OnsetConfig = FEATURES) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, M, T) log-mel in [0, 1] (0 is ``floor_db`` under the clip's peak), zero on padded
    frames, and the valid frame count per clip (B,).  Framing as ``tempo_onset``: frame t is
    centred on sample ``t * hop``; a clip alone has exactly ``valid`` frames."""
    power = stft_power(audio, cfg)
    db = 10.0 * torch.log10(torch.matmul(mel.to(power.dtype), power).clamp(min=1e-10))
    valid = torch.div(lengths, cfg.hop, rounding_mode="floor") + 1
    mask = frame_mask(valid, db.shape[-1])
    floor = masked_max(db.amax(dim=1), mask) - cfg.floor_db
    feat = (torch.maximum(db, floor[:, None, None]) - floor[:, None, None]) / cfg.floor_db
    return feat * mask[:, None, :], valid


class _Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (x + self.mix(self.drop(nn.functional.elu(self.conv(x))))) * mask


class BeatTCN(nn.Module):
    """(B, M, T) features and (B, T) mask -> (B, 2, T) logits: beat, downbeat."""

    def __init__(self, cfg: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Conv1d(2 * cfg.n_mels, cfg.channels, cfg.kernel, padding=(cfg.kernel - 1) // 2)
        self.blocks = nn.ModuleList(_Block(cfg.channels, cfg.kernel, d, cfg.dropout) for d in cfg.dilations)
        self.head = nn.Conv1d(cfg.channels, 2, 1)

    def forward(self, feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(feat.dtype)
        rise = nn.functional.pad(torch.relu(feat[..., 1:] - feat[..., :-1]), (1, 0))
        x = nn.functional.elu(self.stem(torch.cat([feat, rise], dim=1) * m)) * m
        for block in self.blocks:
            x = block(x, m)
        return self.head(x) * m


def save_net(net: BeatTCN, path: Path, extra: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    cfg = asdict(net.cfg)
    meta = {"config": json.dumps(cfg), **(extra or {})}
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)


def load_net(path: Path = WEIGHTS) -> BeatTCN:
    """The network from a safetensors file (no pickle: tensors and a JSON config only)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    raw = json.loads(meta["config"])
    net = BeatTCN(NetConfig(**{**raw, "dilations": tuple(raw["dilations"])}))
    net.load_state_dict(load_file(str(path)))
    net.eval()
    return net


def feature_mel() -> torch.Tensor:
    return mel_filterbank(FEATURES).float()
