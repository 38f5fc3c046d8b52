"""Small networks, a small search space and fake measurements with a known structure for the lut tests."""

from __future__ import annotations

from edgevision.blocks import ClassifierHeadSpec, ConvNormActSpec, InvertedResidualSpec
from edgevision.lut import BlockLatency, MeasurementSetting, SearchSpace, StageChoices, block_features
from edgevision.machine import MachineInfo, machine_info
from edgevision.network import NetworkSpec, StageSpec

KINDS = ("inverted_residual", "ghost_bottleneck", "shufflenet_v2_unit", "repvgg_block", "resnet_basic")

#: every block kind, 32 x 32 input, narrow: features cost milliseconds per block
TINY_SPACE = SearchSpace(
    name="tiny",
    input_size=32,
    stem_widths=(8,),
    stages=(
        StageChoices(block_kinds=KINDS, widths=(12, 16), depths=(1, 2), stride=2, kernel_sizes=(3, 5), expansion_ratios=(2.0, 3.0)),
        StageChoices(block_kinds=KINDS, widths=(24, 32), depths=(1, 2), stride=2, kernel_sizes=(3, 5), expansion_ratios=(2.0, 3.0)),
    ),
    num_classes=10,
)

# known structure: block ms = A * MACs + B * bytes + C; network ms = SLOPE * sum + PER_BLOCK * blocks + CONSTANT
A, B, C = 2e-6, 5e-6, 0.01
SLOPE, PER_BLOCK, CONSTANT = 1.2, 0.05, 0.3


def tiny_network(name: str, split_stages: bool) -> NetworkSpec:
    """stem -> IR(16, s2) -> IR(16, s1) -> head; ``split_stages`` puts the second IR in a stage of its own."""
    first = InvertedResidualSpec(out_channels=16, stride=2, expansion_ratio=2.0)
    second = InvertedResidualSpec(out_channels=16, stride=1, expansion_ratio=2.0)
    stages = (StageSpec(blocks=(first,)), StageSpec(blocks=(second,))) if split_stages else (StageSpec(blocks=(first, second)),)
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=8, stride=2),),
        stages=stages,
        head=ClassifierHeadSpec(num_classes=10),
        input_size=16,
    )


def synthetic_block_ms(block, setting: MeasurementSetting) -> float:
    features = block_features(block, setting)
    return A * features["macs"] + B * features["bytes"] + C


class FakeBlockMeasure:
    """Block latency from the known formula; counts calls; optionally interrupts (Ctrl-C) on call ``interrupt_at``."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.calls = 0
        self.interrupt_at = interrupt_at

    def __call__(self, block, setting) -> BlockLatency:
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        median = synthetic_block_ms(block, setting)
        return BlockLatency(median_ms=median, ci_low_ms=median * 0.99, ci_high_ms=median * 1.01, runs=50)


def synthetic_network_ms(network, setting: MeasurementSetting, run: int = 1) -> float:
    total = sum(synthetic_block_ms(block, setting) for block in network)
    noise = 1.01 if run == 2 else 1.0  # pass 2 reads 1% higher: a known run-to-run "noise"
    return (SLOPE * total + PER_BLOCK * len(network) + CONSTANT) * noise


def other_machine() -> MachineInfo:
    here = machine_info()
    return MachineInfo(**{**here.to_dict(), "cpu_model": "Some Other CPU", "fingerprint": "0123456789ab"})


class CountingNetworkMeasure:
    """Network latency from the known formula (synthetic_network_ms); counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, network, setting, run):
        self.calls += 1
        return synthetic_network_ms(network, setting, run)
