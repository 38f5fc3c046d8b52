"""Hardware-aware architecture search on this machine's latency tables (issue 16).

``edgevision.search.run(space, strategy=..., latency_ms=...)`` searches a :class:`~edgevision.lut.SearchSpace`
or a supernet spec (a network spec with :class:`~edgevision.blocks.ChoiceBlockSpec` layers) with one of
:data:`STRATEGIES`: ``random`` (uniform, the baseline), ``evolution`` (NSGA-II, Deb et al. 2002, via Optuna),
``dnas`` (FBNet, Wu et al. 2019), ``proxyless`` (ProxylessNAS, Cai et al. 2019), ``blocks`` (per-kind
Pareto fronts of random networks) and ``repnas`` (RepNAS, Zhang et al. 2021: which branches each diverse
branch block keeps, fused to one conv). Latency comes from the block tables (``edgevision.lut``), or their
fitted predictor; accuracy from short Bag-of-Tricks training on the embedded data, weights inherited from
one trained supernet (SPOS, Guo et al. 2020) or zero-cost proxies. See docs/search.md.
"""

from .accuracy import PROXIES, ProxyScore, ShortTraining, grad_norm, naswot, proxy_correlations, proxy_scores, synflow
from .latency import Calibration, LatencyModel, SupernetLatency, calibrate, measure_call_overhead
from .result import Candidate, SearchError, SearchResult, hypervolume, pareto_front
from .run import ACCURACY_ESTIMATES, STRATEGIES, SearchContext, measure_network, run
from .sharing import SharedWeights
from .space import as_supernet, decide, fastest_network

__all__ = [
    "ACCURACY_ESTIMATES",
    "PROXIES",
    "STRATEGIES",
    "Calibration",
    "Candidate",
    "LatencyModel",
    "ProxyScore",
    "SearchContext",
    "SearchError",
    "SearchResult",
    "SharedWeights",
    "ShortTraining",
    "SupernetLatency",
    "as_supernet",
    "calibrate",
    "decide",
    "fastest_network",
    "grad_norm",
    "hypervolume",
    "measure_call_overhead",
    "measure_network",
    "naswot",
    "pareto_front",
    "proxy_correlations",
    "proxy_scores",
    "run",
    "synflow",
]
