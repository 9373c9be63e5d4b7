"""Words for folder names: defect types, products and what defects lead to."""

from __future__ import annotations

import re

# Readable names for defect folders of MVTec AD, VisA, LOCO, GoodsAD and mmad's synthetic data.
DEFECT_NAMES: dict[str, str] = {
    "broken_large": "A large break",
    "broken_small": "A small chip",
    "broken": "A break",
    "contamination": "Contamination",
    "crack": "A crack",
    "scratch": "A scratch",
    "scratches": "Scratches",
    "hole": "A hole",
    "cut": "A cut",
    "color": "Discoloration",
    "colour": "Discoloration",
    "stain": "A stain",
    "glue": "A glue spot",
    "glue_strip": "A strip of glue",
    "fold": "A fold",
    "thread": "A loose thread",
    "oil": "An oil spot",
    "rough": "A rough patch",
    "liquid": "A liquid spot",
    "poke": "A poke mark",
    "squeeze": "A squeezed section",
    "faulty_imprint": "A faulty imprint",
    "print": "A printing defect",
    "pill_type": "A wrong pill type",
    "bent": "A bent part",
    "bent_lead": "A bent lead",
    "bent_wire": "A bent wire",
    "cut_lead": "A cut lead",
    "damaged_case": "A damaged case",
    "misplaced": "A misplaced part",
    "missing_cable": "A missing cable",
    "missing_wire": "A missing wire",
    "missing": "A missing part",
    "missing_part": "A missing part",
    "extra_part": "An extra part",
    "flip": "A flipped part",
    "manipulated_front": "A manipulated front",
    "scratch_head": "A scratched head",
    "scratch_neck": "A scratched neck",
    "thread_side": "A damaged side thread",
    "thread_top": "A damaged top thread",
    "cable_swap": "Swapped cables",
    "cut_inner_insulation": "Cut inner insulation",
    "cut_outer_insulation": "Cut outer insulation",
    "poke_insulation": "Poked insulation",
    "gray_stroke": "A gray stroke",
    "metal_contamination": "Metal contamination",
    "split_teeth": "Split teeth",
    "fabric_border": "A frayed fabric border",
    "fabric_interior": "Damaged fabric",
    "broken_teeth": "Broken teeth",
    "squeezed_teeth": "Squeezed teeth",
    "defective": "A defect",
    "combined": "Several defects of different kinds",
    "crack_head": "A cracked head",
    "logical_anomalies": "A logical error in the contents",
    "structural_anomalies": "A structural defect",
    "bad": "A defect",
    "defect": "A defect",
    "anomaly": "An anomaly",
    "surface_damage": "Surface damage",
    "deformation": "A deformation",
    "opened": "An opened package",
    "cap_open": "An open cap",
    "cap_half_open": "A half-open cap",
    "straw_missing": "A missing straw",
    "surface_anomaly": "A surface anomaly",
    "speck": "Specks",
    "specks": "Specks",
}
# Names that only make sense for one product: (category, folder) -> name.
CATEGORY_DEFECT_NAMES: dict[tuple[str, str], str] = {("toothbrush", "defective"): "A defective bristle area"}

# Distractors for Defect Classification, each with its place in the taxonomy below (None: unplaced).
GENERIC_DEFECTS: dict[str, str | None] = {
    "A scratch": "surface",
    "A crack": "structural",
    "A stain": "surface",
    "A hole": "structural",
    "A dent": "structural",
    "Contamination": "surface",
    "A missing part": "logical",
    "Discoloration": "surface",
    "A bent part": "structural",
    "A foreign object": None,
}

# A small defect taxonomy, so that no option is a broader term covering another ("A defect." over
# "A dent."): each node's parent; "any" is the root.
TAXONOMY_PARENT: dict[str, str] = {"structural": "any", "surface": "structural", "logical": "any"}
# Folder names that name a whole node rather than one kind of defect (MVTec LOCO's two types,
# VisA's "bad", GoodsAD's "surface_damage", MVTec's "combined").
BROAD_DEFECTS: dict[str, str] = {
    **dict.fromkeys(
        ("bad", "defect", "defects", "defective", "anomaly", "anomalies", "anomalous", "abnormal", "ng", "nok"),
        "any",
    ),
    **dict.fromkeys(("not_good", "notgood", "fault", "faulty", "damage", "damaged", "reject", "combined"), "any"),
    **dict.fromkeys(("structural_anomalies", "structural_anomaly", "structural", "structural_defect"), "structural"),
    **dict.fromkeys(("logical_anomalies", "logical_anomaly", "logical", "logical_defect"), "logical"),
    **dict.fromkeys(("surface_anomaly", "surface_anomalies", "surface_damage", "surface_defect", "surface"), "surface"),
}
NODE_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logical", ("missing", "misplace", "extra", "flip", "swap", "wrong", "additional", "mixed", "order")),
    (
        "surface",
        ("scratch", "stain", "spot", "speck", "colo", "contamin", "oil", "liquid", "glue", "rough", "print", "stroke"),
    ),
    (
        "structural",
        ("crack", "break", "broken", "chip", "split", "fractur", "hole", "dent", "bent", "cut", "poke", "squeez"),
    ),
    ("structural", ("deform", "fold", "tear", "open")),
)

PRODUCT_NAMES: dict[str, str] = {
    "metal_nut": "A metal nut",
    "pcb1": "A printed circuit board",
    "pcb2": "A printed circuit board",
    "pcb3": "A printed circuit board",
    "pcb4": "A printed circuit board",
    "macaroni1": "Macaroni",
    "macaroni2": "Macaroni",
    "chewinggum": "A chewing gum",
    "pipe_fryum": "A pipe-shaped fryum",
    "fryum": "A fryum",
    "cashew": "A cashew nut",
    "capsules": "Capsules",
    "breakfast_box": "A breakfast box",
    "juice_bottle": "A juice bottle",
    "pushpins": "Pushpins",
    "screw_bag": "A bag of screws",
    "splicing_connectors": "Splicing connectors",
    "cigarette_box": "A cigarette box",
    "drink_bottle": "A drink bottle",
    "drink_can": "A drink can",
    "food_bottle": "A food bottle",
    "food_box": "A food box",
    "food_package": "A food package",
    "grid": "A metal grid",
    "tile": "A ceramic tile",
    "wood": "A wooden surface",
    "leather": "A leather surface",
    "carpet": "A carpet",
    "brick": "A brick wall",
    "gravel": "A gravel surface",
    "grass": "A lawn",
    "washer": "A metal washer",
    "tablet": "A round tablet",
    "board": "A circuit board",
}
GENERIC_PRODUCTS = (
    "A bottle",
    "A cable",
    "A screw",
    "A pill",
    "A zipper",
    "A toothbrush",
    "A transistor",
    "A capsule",
    "A hazelnut",
    "A candle",
    "A metal plate",
    "A plastic cap",
    "A gear",
    "A spring",
)

# Generic products a person could take for the product itself: never a distractor against it.
LOOKALIKE_PRODUCTS: tuple[frozenset[str], ...] = (
    frozenset({"bolt", "screw", "bolts", "screws"}),
    frozenset({"cable", "wire", "cables", "wires"}),
    frozenset({"bottle", "jar", "flask"}),
    frozenset({"cap", "plastic cap", "lid", "bottle cap"}),
    frozenset({"nut", "hex nut", "nuts"}),
)


def is_lookalike(option: str, product: str) -> bool:
    """Whether a generic product option could be taken for the product (a bolt for a screw)."""
    option_words, product_words = bare_product(option).split(), bare_product(product).split()
    for group in LOOKALIKE_PRODUCTS:
        names_product = " ".join(product_words) in group or bool(product_words and product_words[-1] in group)
        names_option = " ".join(option_words) in group or bool(option_words and option_words[-1] in group)
        if names_product and names_option:
            return True
    return False


def bare_product(text: str) -> str:
    """A product name without its article and full stop, lower case: 'A Screw.' -> 'screw'."""
    words = text.strip().rstrip(".").lower().split()
    return " ".join(words[1:] if words and words[0] in {"a", "an", "the"} else words)


# Effects by defect family (what the defect may cause), for Defect Analysis.
FAMILY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("structural", ("crack", "break", "broken", "chip", "split", "fracture", "structural")),
    ("missing", ("missing", "hole", "cut_lead", "poke", "opened", "open")),
    ("assembly", ("misplaced", "flip", "bent", "swap", "extra", "fold", "deformation", "squeez", "logical")),
    ("contamination", ("contamination", "stain", "oil", "liquid", "glue", "speck", "dirt", "color", "colour")),
    ("surface", ("scratch", "rough", "abrasion", "surface", "print", "imprint", "stroke", "cut")),
)
FAMILY_EFFECTS: dict[str, tuple[str, ...]] = {
    "structural": (
        "It weakens the part, which may break under load.",
        "It may lead to leakage or failure of the component.",
    ),
    "missing": (
        "The product may not function as intended because a part is absent.",
        "It leaves an opening that may let contents leak or dirt enter.",
    ),
    "assembly": (
        "It may prevent correct fitting or assembly with other parts.",
        "The product may not work reliably because a part is out of place.",
    ),
    "contamination": (
        "It may affect hygiene and product safety.",
        "It degrades the appearance and may indicate a process fault.",
    ),
    "surface": (
        "It mainly affects the appearance and may start corrosion or wear.",
        "It may reduce the product's value because of cosmetic damage.",
    ),
    "generic": ("It may reduce the product's quality and reliability.",),
}
BENIGN_EFFECTS = (
    "It improves the product's strength.",
    "It has no effect on the product.",
    "It makes the product easier to clean.",
    "It increases the product's shelf life.",
)


def humanize(name: str) -> str:
    """A folder name as words."""
    return re.sub(r"[_\-]+", " ", name).strip()


def defect_name(folder: str, category: str = "") -> str:
    """A readable name for a defect folder (of a category, for the few names that depend on it)."""
    name = CATEGORY_DEFECT_NAMES.get((category.lower(), folder.lower())) or DEFECT_NAMES.get(folder.lower())
    return f"{name}." if name else f"{humanize(folder).capitalize()}."


def _key(folder: str) -> str:
    return re.sub(r"[\s\-]+", "_", folder.strip().lower())


def defect_node(folder: str) -> str | None:
    """Where a defect folder sits in the taxonomy: the node it names (broad) or falls under; None if unplaced."""
    key = _key(folder)
    if key in BROAD_DEFECTS:
        return BROAD_DEFECTS[key]
    for node, keywords in NODE_KEYWORDS:
        if any(k in key for k in keywords):
            return node
    return None


def is_broad(folder: str) -> bool:
    """Whether a folder names a whole class of defects ("bad", "structural_anomalies")."""
    return _key(folder) in BROAD_DEFECTS


def under(node: str | None, ancestor: str) -> bool:
    """Whether a taxonomy node lies under (or is) ancestor; an unplaced node lies only under the root."""
    if node is None:
        return ancestor == "any"
    current: str | None = node
    while current is not None:
        if current == ancestor:
            return True
        current = TAXONOMY_PARENT.get(current)
    return False


def product_name(category: str) -> str:
    """A readable name for a category folder."""
    name = PRODUCT_NAMES.get(category.lower())
    if name:
        return f"{name}."
    words = humanize(category)
    article = "An" if words[:1].lower() in "aeiou" else "A"
    return f"{article} {words}."


def defect_family(folder: str) -> str:
    """The family of a defect type, for its likely effects."""
    lowered = folder.lower()
    for family, keywords in FAMILY_KEYWORDS:
        if any(k in lowered for k in keywords):
            return family
    return "generic"
