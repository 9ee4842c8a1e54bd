"""Offline stand-ins for Confluence and OpenAI, faithful enough to test the pipeline against.

``Site`` is an in-memory Confluence; ``ConfluenceServer`` serves it over HTTP as Confluence Cloud's REST
API (v1 and v2) does; ``EmbeddingsServer`` answers OpenAI's ``/v1/embeddings`` with a lexical stand-in
(feature hashing), not a semantic model. ``generate_corpus`` and ``load_samples`` fill a site. No Dagster.
"""

from confluence_assets.sandbox.attachments import Attachment
from confluence_assets.sandbox.clock import SiteClock
from confluence_assets.sandbox.comments import Comment
from confluence_assets.sandbox.confluence_server import ConfluenceServer, Limits
from confluence_assets.sandbox.corpus import CorpusInfo, generate_corpus
from confluence_assets.sandbox.cql import CQLError
from confluence_assets.sandbox.embeddings_server import EmbeddingsServer, EmbeddingStats
from confluence_assets.sandbox.faults import Fault, FaultRules, Stats, parse_rules
from confluence_assets.sandbox.permissions import Group, PermissionSite, generate_permissions
from confluence_assets.sandbox.samples import SamplesInfo, default_samples_dir, load_samples
from confluence_assets.sandbox.site import PageSnapshot, Site, SiteError, User

__all__ = [
    "Attachment",
    "CQLError",
    "Comment",
    "ConfluenceServer",
    "CorpusInfo",
    "EmbeddingStats",
    "EmbeddingsServer",
    "Fault",
    "FaultRules",
    "Group",
    "Limits",
    "PageSnapshot",
    "PermissionSite",
    "SamplesInfo",
    "Site",
    "SiteClock",
    "SiteError",
    "Stats",
    "User",
    "default_samples_dir",
    "generate_corpus",
    "generate_permissions",
    "load_samples",
    "parse_rules",
]
