"""Load the ten real Confluence Cloud pages (confluence_samples/, CC BY 4.0) as a space of the site.

The pages keep their real ids, titles, bodies, versions, timestamps, authors, positions and attachments.
Their ancestors and the children listed in ``children.v2.json`` are not among the samples; they are
created as empty stub pages (real ids and titles) so that the tree, breadcrumbs and child lists are the
real ones. Samples: querypie/querypie-docs, CC BY 4.0 (see the samples' README).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from confluence_assets.sandbox.site import Site

STUB_CREATED = "2024-07-14T05:00:00.000Z"


PACKAGED_SAMPLES_DIR = Path(__file__).resolve().parent / "confluence_samples"  # CC BY 4.0, see its README


def default_samples_dir() -> Path:
    """``$CONFLUENCE_ASSETS_SAMPLES_DIR``, else the copy shipped with this package."""
    env = os.environ.get("CONFLUENCE_ASSETS_SAMPLES_DIR")
    return Path(env) if env else PACKAGED_SAMPLES_DIR


@dataclass(frozen=True)
class SamplesInfo:
    space_key: str
    page_ids: tuple[str, ...]  # the real sample pages
    stub_ids: tuple[str, ...]  # their ancestors and children, empty
    path: Path


def _read(folder: Path, name: str):
    return json.loads((folder / name).read_text(encoding="utf-8"))


def load_samples(
    site: Site, space_key: str = "QM", path: str | Path | None = None, *, name: str | None = None
) -> SamplesInfo:
    """Add the samples as space ``space_key`` (its real id and homepage); returns what was loaded."""
    root = Path(path) if path is not None else default_samples_dir()
    folders = sorted((p for p in root.iterdir() if p.is_dir() and (p / "page.v1.json").exists()), key=lambda p: p.name)
    if not folders:
        raise FileNotFoundError(f"no Confluence samples under {root}")
    samples = [(f, _read(f, "page.v1.json"), _read(f, "page.v2.json")) for f in folders]
    with site.lock:
        for _, _, v2 in samples:
            for account in {v2["authorId"], v2["ownerId"], v2["version"]["authorId"]}:
                if account not in site.users:
                    site.add_user(f"QueryPie author {len(site.users)}", account_id=account)
        # Every sample has the full chain from the homepage down; collect the stubs, parents first.
        stubs: dict[str, tuple[str, str | None, int]] = {}  # id -> (title, parent id, position)
        for _, v1, _ in samples:
            parent = None
            for ancestor in v1["ancestors"]:
                stubs.setdefault(ancestor["id"], (ancestor["title"], parent, ancestor["extensions"]["position"]))
                parent = ancestor["id"]
        sample_ids = {v1["id"] for _, v1, _ in samples}
        home_id, (home_title, _, _) = next(iter(stubs.items()))
        author = samples[0][2]["authorId"]
        space = site.add_space(
            space_key,
            name or home_title,
            homepage_title=home_title,
            homepage_id=home_id,
            space_id=int(samples[0][2]["spaceId"]),
            creator=author,
            when=STUB_CREATED,
        )
        stub_ids = [home_id]
        # Ancestors that are samples themselves (544178405) are created with their real content below.
        pending = [(sid, t, p, pos) for sid, (t, p, pos) in stubs.items() if sid != home_id]
        created = {home_id}
        by_id = {v1["id"]: (folder, v1, v2) for folder, v1, v2 in samples}
        while pending:
            for entry in list(pending):
                sid, title, parent, position = entry
                if parent not in created:
                    continue
                if sid in by_id:
                    _create_sample(site, space.key, *by_id[sid])
                else:
                    site.create_page(
                        space.key,
                        title,
                        "",
                        parent_id=parent,
                        page_id=sid,
                        position=position,
                        author=author,
                        when=STUB_CREATED,
                    )
                    stub_ids.append(sid)
                created.add(sid)
                pending.remove(entry)
        for folder, v1, v2 in samples:
            if v1["id"] not in created:
                _create_sample(site, space.key, folder, v1, v2)
                created.add(v1["id"])
        for folder, v1, _ in samples:
            for child in _read(folder, "children.v2.json")["results"]:
                if child["id"] not in created:
                    site.create_page(
                        space.key,
                        child["title"],
                        "",
                        parent_id=v1["id"],
                        page_id=child["id"],
                        position=child["childPosition"],
                        author=author,
                        when=STUB_CREATED,
                    )
                    created.add(child["id"])
                    stub_ids.append(child["id"])
        return SamplesInfo(space.key, tuple(sorted(sample_ids, key=int)), tuple(stub_ids), root)


def _create_sample(site: Site, space_key: str, folder: Path, v1: dict, v2: dict) -> None:
    page = site.create_page(
        space_key,
        v1["title"],
        (folder / "page.xhtml").read_text(encoding="utf-8"),
        parent_id=v2["parentId"],
        page_id=v1["id"],
        position=v2["position"],
        author=v2["authorId"],
        when=v2["version"]["createdAt"],
        created_at=v2["createdAt"],
        version=v2["version"]["number"],
    )
    page.owner_id = v2["ownerId"]
    page.modified_by = v2["version"]["authorId"]
    page.version_message = v2["version"]["message"]
    for att in _read(folder, "attachments.v1.json")["results"]:
        ext = att["extensions"]
        site.add_attachment(
            page.id,
            att["title"],
            media_type=ext["mediaType"],
            file_size=ext["fileSize"],
            comment=ext["comment"],
            attachment_id=att["id"],
            file_id=ext["fileId"],
            author=v2["authorId"],
            when=v2["createdAt"],
        )
