"""SSDLite (detection). torchvision's ``ssdlite320_mobilenet_v3_large`` stores every tensor under the
path our :mod:`edgevision.detection.ssdlite` module uses (its layout was built to match), so the map
is the identity; the importer still checks every name and shape and that each tensor is used once."""

from ..keymap import KeyMap

TORCHVISION = KeyMap(
    "torchvision",
    ((r"(.+)", "{1}"),),
    upstream={"ssdlite320_mobilenet_v3_large": "ssdlite320_mobilenet_v3_large"},
)
KEYMAPS = {"ssdlite": {"torchvision": TORCHVISION}}
