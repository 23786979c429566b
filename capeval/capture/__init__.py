"""CAPTURE (Dong et al., 2024): scene-graph parsing, three-stage matching and scoring of detail captions."""
