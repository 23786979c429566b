"""CAPTURE's stop list of scene words (Dong et al., 2024): object names about the picture, not its content.

CAPTURE drops a parsed object whose lemma is in this list ("image", "background", "scene", "atmosphere",
...) before matching. The 317 entries are those of the reference implementation
(``capture_metric/stop_words.py``), kept verbatim, including its capitalised and non-English variants
("Moment", "Atmosphäre"), listed here alphabetically. Only objects are filtered: attributes and relations
of such words are kept, as in the reference.
"""

from __future__ import annotations

STOP_WORDS: frozenset[str] = frozenset({
    "accent", "action", "activity", "adventure", "aesthetic", "afternoon", "air", "ambiance", "angle",
    "anticipation", "appeal", "appearance", "architecture", "area", "arrangement", "art", "atmosfere",
    "atmosphere", "Atmosphäre", "atmosphère", "attention", "attire", "aura", "back", "backdrop",
    "background", "balance", "base", "beauty", "beauté", "bloom", "body language", "border", "bottom",
    "boundary", "breakfast", "bustle", "camaraderie", "case", "celebration", "center", "chaos",
    "character", "charm", "city life", "cityscape", "clothing", "coexistence", "collage", "color",
    "comfort", "community", "companionship", "component", "composition", "condition", "confidence",
    "connection", "content", "context", "contrast", "conversation", "countertop", "countryside",
    "court", "creativity", "culture", "curiosity", "darkness", "day", "decor", "decoration", "demeanor",
    "depth", "description", "design", "destination", "detail", "determination", "dining experience",
    "direction", "display", "distance", "diversity", "ecosystem", "edge", "effect", "elegance",
    "element", "emotion", "enclosure", "end", "energy", "ensemble", "entrance", "environment", "era",
    "essence", "essential", "event", "everyday life", "excitement", "expanse", "experience",
    "exploration", "expression", "exterior", "facade", "feature", "field", "figure", "flavor", "flight",
    "focus", "foreground", "form", "formation", "frame", "freedom", "front", "functionality", "game",
    "gaze", "glow", "grandeur", "group", "handle", "harmony", "height", "her", "heritage", "him",
    "history", "horizon", "hue", "hustle", "identity", "illustration", "image", "imagery",
    "imagination", "individual", "information", "infrastructure", "ingredient", "innocence",
    "intensity", "interaction", "interior", "interpretation", "intersection", "it", "item", "journey",
    "joy", "key", "knowledge", "landscape", "layer", "layout", "left", "life", "living space",
    "location", "love", "marking", "marvel", "match", "material", "memory", "message", "mid-air",
    "middle", "modernity", "Moment", "moment", "mood", "motion", "movement", "music", "mystery", "name",
    "narrative", "natural", "natural beauté", "Nature", "nature", "neighborhood", "network", "night",
    "nostalgia", "object", "operation", "order", "outdoor", "outdoors", "outline", "page", "palette",
    "pant", "passion", "pattern", "peak", "performance", "personality", "perspective", "photo",
    "photograph", "picture", "place", "placement", "play", "pleasure", "point", "pose", "position",
    "positioning", "posture", "power", "presence", "presentation", "promise", "purpose", "reality",
    "red", "reflection", "relaxation", "remote", "resilience", "rhythm", "right", "rim", "role",
    "routine", "row", "scale", "scene", "scenery", "section", "serenity", "setting", "shape", "short",
    "show", "side", "significance", "silhouette", "simplicity", "site", "skill", "snapshot", "solitude",
    "space", "spectacle", "spectator", "speed", "spirit", "spot", "stance", "step", "stillness",
    "story", "strap", "stride", "structure", "style", "subject", "surface", "surrounding",
    "surroundings", "symbolism", "tableau", "tall", "task", "team", "teamwork", "technology", "tension",
    "terrain", "text", "texture", "theme", "thrill", "time", "tip", "tone", "top", "topping", "touch",
    "track", "traffic", "tranquility", "travel", "treat", "turn", "uniform", "unity", "universe",
    "urban", "urban life", "urban setting", "vantage point", "vastness", "vibe", "vibrancy", "view",
    "viewer", "viewpoint", "warmth", "weather", "white", "wild", "wilderness", "winter", "work",
    "workspace", "world",
})
