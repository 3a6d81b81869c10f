"""The search-space language: YAML spec, its decisions, and the SearchSpace that samples, encodes and decodes."""

from nas.space.language import SpaceError
from nas.space.search_space import SearchSpace, load_space
from nas.space.walk import Condition, Decision, NotInSpace

__all__ = ["Condition", "Decision", "NotInSpace", "SearchSpace", "SpaceError", "load_space"]
