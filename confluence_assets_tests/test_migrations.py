"""Schema and migration runner against the real embedded PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import psycopg
import pytest

from confluence_assets.db import migrations
from confluence_assets_tests.archon_support import ARCHON, archon_on_supabase, drop_roles, supabase_roles

FIXTURES = Path(__file__).parent / "fixtures"


def _columns(conn, table: str) -> dict[str, tuple[str, str | None, str]]:
    rows = conn.execute(
        """SELECT column_name, data_type, column_default, is_nullable
           FROM information_schema.columns WHERE table_name = %s""",
        (table,),
    ).fetchall()
    return {name: (dtype, default, nullable) for name, dtype, default, nullable in rows}


def _indexdefs(conn) -> dict[str, str]:
    rows = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'").fetchall()
    return dict(rows)


def test_fresh_database_gets_every_migration_once_then_nothing(fresh_db_url):
    applied = migrations.migrate(fresh_db_url)
    names = [m.name for m in applied]
    assert names[:2] == ["000_archon_base_tables", "010_add_confluence_pages"]
    assert names == sorted(names)
    assert migrations.migrate(fresh_db_url) == []
    assert migrations.pending(fresh_db_url) == []


def test_each_sql_file_is_idempotent_when_run_twice_by_hand(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        for m in migrations.discover():
            conn.execute(m.sql)
            conn.execute(m.sql)
        rows = conn.execute("SELECT version, migration_name, count(*) FROM archon_migrations GROUP BY 1, 2").fetchall()
    assert {(v, n) for v, n, _ in rows} == {(m.version, m.name) for m in migrations.discover()}
    assert all(count == 1 for _, _, count in rows)


def test_confluence_pages_columns_types_and_defaults(migrated_db_url):
    with psycopg.connect(migrated_db_url) as conn:
        cols = _columns(conn, "confluence_pages")
    expected_types = {
        "page_id": "text",
        "source_id": "text",
        "space_key": "text",
        "title": "text",
        "version": "integer",
        "last_modified": "timestamp with time zone",
        "is_deleted": "boolean",
        "deleted_at": "timestamp with time zone",
        "path": "text",
        "metadata": "jsonb",
        "created_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
    }
    assert {k: v[0] for k, v in cols.items() if k in expected_types} == expected_types
    assert cols["is_deleted"][1] == "false"
    assert cols["created_at"][1] == "now()" and cols["updated_at"][1] == "now()"
    assert cols["metadata"][2] == "NO" and cols["source_id"][2] == "NO"
    assert cols["deleted_at"][2] == "YES" and cols["path"][2] == "YES"


def test_archon_base_tables_match_archon_columns(migrated_db_url):
    with psycopg.connect(migrated_db_url) as conn:
        sources = _columns(conn, "archon_sources")
        chunks = _columns(conn, "archon_crawled_pages")
        mig = _columns(conn, "archon_migrations")
        generated = conn.execute(
            """SELECT is_generated, generation_expression FROM information_schema.columns
               WHERE table_name = 'archon_crawled_pages' AND column_name = 'content_search_vector'"""
        ).fetchone()
        vector_dims = dict(
            conn.execute(
                """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
                   WHERE attrelid = 'archon_crawled_pages'::regclass AND attname ~ '^embedding_[0-9]+$'"""
            ).fetchall()
        )
    assert set(sources) == {
        "source_id",
        "source_url",
        "source_display_name",
        "summary",
        "total_word_count",
        "title",
        "metadata",
        "created_at",
        "updated_at",
    }
    assert sources["metadata"][0] == "jsonb" and sources["total_word_count"][1] == "0"
    assert {
        "id",
        "url",
        "chunk_number",
        "content",
        "metadata",
        "source_id",
        "llm_chat_model",
        "embedding_model",
        "embedding_dimension",
        "content_search_vector",
        "created_at",
    } <= set(chunks)
    assert chunks["id"][0] == "bigint" and "nextval" in chunks["id"][1]
    assert vector_dims == {
        "embedding_384": "vector(384)",
        "embedding_768": "vector(768)",
        "embedding_1024": "vector(1024)",
        "embedding_1536": "vector(1536)",
        "embedding_3072": "vector(3072)",
    }
    assert generated[0] == "ALWAYS" and "to_tsvector('english'" in generated[1]
    assert mig["checksum"][0] == "character varying" and mig["id"][0] == "uuid"
    # Defaults and nullability, as Archon declares them.
    for column in ("created_at", "updated_at"):
        assert sources[column][1] == "timezone('utc'::text, now())" and sources[column][2] == "NO"
    assert sources["metadata"][1] == "'{}'::jsonb" and sources["source_id"][2] == "NO"
    assert chunks["metadata"][1] == "'{}'::jsonb" and chunks["metadata"][2] == "NO"
    assert all(chunks[c][2] == "NO" for c in ("url", "chunk_number", "content", "source_id", "created_at"))
    assert chunks["created_at"][1] == "timezone('utc'::text, now())"
    assert mig["id"][1] == "gen_random_uuid()" and mig["applied_at"][1] == "now()"
    assert mig["version"][2] == "NO" and mig["migration_name"][2] == "NO"
    with psycopg.connect(migrated_db_url) as conn:
        lengths = dict(
            conn.execute(
                """SELECT column_name, character_maximum_length FROM information_schema.columns
                   WHERE table_name = 'archon_migrations' AND data_type = 'character varying'"""
            ).fetchall()
        )
        uniques = {
            row[0]
            for row in conn.execute(
                """SELECT pg_get_constraintdef(oid) FROM pg_constraint
                   WHERE contype = 'u'
                     AND conrelid IN ('archon_crawled_pages'::regclass, 'archon_migrations'::regclass)"""
            )
        }
    assert lengths == {"version": 20, "migration_name": 255, "checksum": 32}
    assert uniques == {"UNIQUE (url, chunk_number)", "UNIQUE (version, migration_name)"}


def test_the_seven_indexes_with_their_where_clauses_and_opclasses(migrated_db_url):
    with psycopg.connect(migrated_db_url) as conn:
        defs = _indexdefs(conn)
    expected = {
        "idx_confluence_pages_source": ["btree (source_id) WHERE (is_deleted = false)"],
        "idx_confluence_pages_space": ["btree (space_key) WHERE (is_deleted = false)"],
        "idx_confluence_pages_version": ["btree (page_id, version)"],
        "idx_confluence_pages_path": ["btree (path text_pattern_ops)"],
        "idx_confluence_pages_jira": ["gin (((metadata -> 'jira_issue_links'::text)) jsonb_path_ops)"],
        "idx_confluence_pages_mentions": ["gin (((metadata -> 'user_mentions'::text)) jsonb_path_ops)"],
        # 090 replaced 010's index on metadata->>'page_id' (see confluence_chunk_page_id).
        "idx_crawled_pages_confluence_chunk_page_id": [
            "btree (confluence_chunk_page_id(metadata)) WHERE (confluence_chunk_page_id(metadata) IS NOT NULL)"
        ],
    }
    for name, fragments in expected.items():
        assert name in defs, name
        for fragment in fragments:
            assert fragment in defs[name], (name, defs[name])
    for dim in (384, 768, 1024, 1536):
        assert "USING hnsw" in defs[f"idx_archon_crawled_pages_embedding_{dim}"]
        assert "vector_cosine_ops" in defs[f"idx_archon_crawled_pages_embedding_{dim}"]


def test_comments_document_tables_columns_and_indexes(migrated_db_url):
    with psycopg.connect(migrated_db_url) as conn:
        table = conn.execute("SELECT obj_description('confluence_pages'::regclass)").fetchone()[0]
        uncommented = conn.execute(
            """SELECT a.attname FROM pg_attribute a
               WHERE a.attrelid = 'confluence_pages'::regclass AND a.attnum > 0 AND NOT a.attisdropped
                 AND col_description(a.attrelid, a.attnum) IS NULL"""
        ).fetchall()
        index_comments = conn.execute(
            """SELECT c.relname, obj_description(c.oid) FROM pg_class c
               WHERE c.relname LIKE 'idx_confluence_pages_%'
                  OR c.relname = 'idx_crawled_pages_confluence_chunk_page_id'"""
        ).fetchall()
    assert "archon_crawled_pages" in table
    assert uncommented == []
    assert len(index_comments) >= 7 and all(comment for _, comment in index_comments)  # 010's seven, then 030's


def _seed_space(conn, source_id: str, pages: int, chunks_per_page: int) -> None:
    conn.execute(
        "INSERT INTO archon_sources (source_id, title, metadata) VALUES (%s, %s, %s)",
        (source_id, source_id, json.dumps({"source_type": "confluence"})),
    )
    conn.execute(
        """INSERT INTO confluence_pages (page_id, source_id, space_key, title, version, last_modified, path, metadata)
           SELECT %(s)s || '-' || g, %(s)s, 'K', 'Page ' || g, 1, now(), '/' || g, '{}'::jsonb
           FROM generate_series(1, %(n)s) g""",
        {"s": source_id, "n": pages},
    )
    conn.execute(
        """INSERT INTO archon_crawled_pages (url, chunk_number, content, metadata, source_id)
           SELECT 'confluence://K/' || %(s)s || '-' || p, c, 'chunk ' || c || ' of ' || p,
                  jsonb_build_object('source_type', 'confluence', 'page_id', %(s)s || '-' || p), %(s)s
           FROM generate_series(1, %(n)s) p, generate_series(0, %(k)s - 1) c""",
        {"s": source_id, "n": pages, "k": chunks_per_page},
    )


def test_deleting_a_source_cascades_to_its_pages_and_chunks_only(migrated_db_url):
    with psycopg.connect(migrated_db_url) as conn:
        _seed_space(conn, "confluence_A", pages=3, chunks_per_page=2)
        _seed_space(conn, "confluence_B", pages=2, chunks_per_page=2)
        conn.execute("DELETE FROM archon_sources WHERE source_id = 'confluence_A'")
        pages = conn.execute("SELECT source_id, count(*) FROM confluence_pages GROUP BY 1").fetchall()
        chunks = conn.execute("SELECT source_id, count(*) FROM archon_crawled_pages GROUP BY 1").fetchall()
    assert pages == [("confluence_B", 2)]
    assert chunks == [("confluence_B", 4)]


def test_chunk_lookup_by_page_id_uses_the_partial_index(migrated_db_url):
    with psycopg.connect(migrated_db_url) as conn:
        _seed_space(conn, "confluence_BIG", pages=4000, chunks_per_page=8)  # 32,000 chunks
        # Non-Confluence rows (no Confluence page id) are outside the partial index.
        conn.execute(
            """INSERT INTO archon_sources (source_id) VALUES ('web');
               INSERT INTO archon_crawled_pages (url, chunk_number, content, source_id)
               SELECT 'https://example.com/' || g, 0, 'web ' || g, 'web' FROM generate_series(1, 5000) g"""
        )
        conn.execute("ANALYZE archon_crawled_pages")
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN SELECT id, content FROM archon_crawled_pages WHERE confluence_chunk_page_id(metadata) = %s",
                ("confluence_BIG-1234",),
            ).fetchall()
        )
        # A prepared statement's generic plan (a real $1, as a driver that prepares would send it).
        conn.execute(
            "PREPARE chunks_of(text) AS SELECT id, content FROM archon_crawled_pages "
            "WHERE confluence_chunk_page_id(metadata) = $1"
        )
        conn.execute("SET plan_cache_mode = force_generic_plan")
        generic = "\n".join(r[0] for r in conn.execute("EXPLAIN EXECUTE chunks_of('confluence_BIG-1234')"))
        hits = conn.execute(
            "SELECT count(*) FROM archon_crawled_pages WHERE confluence_chunk_page_id(metadata) = %s",
            ("confluence_BIG-1234",),
        ).fetchone()[0]
    assert "idx_crawled_pages_confluence_chunk_page_id" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "idx_crawled_pages_confluence_chunk_page_id" in generic and "$1" in generic, generic
    assert "Seq Scan" not in generic, generic
    assert hits == 8


def test_checksum_is_recorded_for_every_file(migrated_db_url):
    with psycopg.connect(migrated_db_url) as conn:
        recorded = dict(
            ((v, n), c) for v, n, c in conn.execute("SELECT version, migration_name, checksum FROM archon_migrations")
        )
    for m in migrations.discover():
        assert recorded[(m.version, m.name)] == hashlib.md5(m.path.read_bytes()).hexdigest()


def test_an_edited_applied_migration_is_refused(fresh_db_url, tmp_path):
    sql_copy = tmp_path / "sql"
    shutil.copytree(migrations.sql_dir(), sql_copy)
    migrations.migrate(fresh_db_url, sql_copy)
    target = sql_copy / "0.1.0" / "010_add_confluence_pages.sql"
    target.write_text(target.read_text() + "\n-- edited after it was applied\n")
    with pytest.raises(migrations.ChecksumMismatchError) as excinfo:
        migrations.migrate(fresh_db_url, sql_copy)
    message = str(excinfo.value)
    assert "010_add_confluence_pages" in message and "new numbered migration" in message


def test_a_file_applied_by_hand_without_checksum_is_adopted(fresh_db_url):
    base, pages = migrations.discover()[:2]
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(base.sql)
        conn.execute(pages.sql)  # self-records without a checksum, as psql in Supabase would
        states = {s.migration.name: s.state for s in migrations.status(conn)}
    assert states[pages.name] == "unverified"
    migrations.migrate(fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn:
        checksum = conn.execute(
            "SELECT checksum FROM archon_migrations WHERE migration_name = %s", (pages.name,)
        ).fetchone()[0]
    assert checksum == pages.checksum


def test_a_failing_migration_rolls_back_and_names_the_file(fresh_db_url, tmp_path):
    sql_copy = tmp_path / "sql"
    shutil.copytree(migrations.sql_dir(), sql_copy)
    (sql_copy / "0.1.0" / "999_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT no_such_function();\n")
    with pytest.raises(migrations.MigrationError, match="999_broken"):
        migrations.migrate(fresh_db_url, sql_copy)
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        assert conn.execute("SELECT to_regclass('confluence_pages')").fetchone()[0] == "confluence_pages"


def test_existing_archon_database_keeps_its_rows_indexes_and_foreign_key(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute((FIXTURES / "archon_existing.sql").read_text())
        before = {
            table: conn.execute(f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t").fetchone()[0]  # noqa: S608
            for table in ("archon_sources", "archon_crawled_pages", "archon_settings")
        }
        archon_migration_rows = conn.execute("SELECT count(*) FROM archon_migrations").fetchone()[0]
    migrations.migrate(fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn:
        after = {
            table: conn.execute(f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t").fetchone()[0]  # noqa: S608
            for table in before
        }
        defs = _indexdefs(conn)
        fk_action = conn.execute(
            """SELECT confdeltype FROM pg_constraint
               WHERE conrelid = 'archon_crawled_pages'::regclass AND contype = 'f'"""
        ).fetchone()[0]
        ours = conn.execute("SELECT count(*) FROM archon_migrations WHERE checksum IS NOT NULL").fetchone()[0]
        total = conn.execute("SELECT count(*) FROM archon_migrations").fetchone()[0]
        assert conn.execute("SELECT to_regclass('confluence_pages')").fetchone()[0] == "confluence_pages"
    assert after == before
    assert "ivfflat" in defs["idx_archon_crawled_pages_embedding_1536"]  # Archon's own index is untouched
    assert fk_action == "a"  # Archon's FK (NO ACTION) is left as it is
    assert "idx_crawled_pages_confluence_chunk_page_id" in defs
    assert total == archon_migration_rows + ours == archon_migration_rows + len(migrations.discover())


OUR_PRIVATE_TABLES = (
    "confluence_sync_staged_pages",
    "confluence_sync_staged_chunks",
    "confluence_groups",
    "confluence_group_members",
    "confluence_users",
    "confluence_space_permissions",
    "confluence_page_restrictions",
    "confluence_sources_seen",
)


@pytest.fixture
def role_database(server_url):
    """A database, and the Supabase roles it creates, which are the cluster's: once the database is
    dropped they are dropped too, so that every other database of the session stays plain PostgreSQL."""
    import uuid

    from confluence_assets_tests.conftest import _create_database, _drop_database

    with psycopg.connect(server_url, autocommit=True) as conn:
        before = supabase_roles(conn)
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield _create_database(server_url, name)
    _drop_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        drop_roles(conn, supabase_roles(conn) - before)


def test_rls_is_skipped_on_plain_postgres(fresh_db_url):
    """No Supabase role in the cluster: the migrations apply, and create no policy (none is needed: only
    the owner reads)."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert supabase_roles(conn) == set()  # the role fixtures leave none behind
    migrations.migrate(fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn:
        rls = dict(conn.execute("SELECT relname, relrowsecurity FROM pg_class WHERE relkind = 'r'").fetchall())
        policies = conn.execute("SELECT tablename, policyname FROM pg_policies").fetchall()
    assert rls["confluence_pages"] is False and rls["archon_crawled_pages"] is False and policies == []
    # Our own tables have row level security on everywhere (no policy: only their owner reads them).
    assert all(rls[t] for t in OUR_PRIVATE_TABLES)


def test_rls_policies_are_created_where_supabase_auth_exists(role_database):
    with psycopg.connect(role_database, autocommit=True) as conn:
        conn.execute(
            """CREATE SCHEMA auth;
               CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'service_role'::text $$;
               CREATE ROLE authenticated NOLOGIN;"""
        )
    migrations.migrate(role_database)
    with psycopg.connect(role_database) as conn:
        rls = conn.execute("SELECT relrowsecurity FROM pg_class WHERE relname = 'confluence_pages'").fetchone()[0]
        policies = {
            name: (cmd, permissive, roles)
            for name, cmd, permissive, roles in conn.execute(
                "SELECT policyname, cmd, permissive, roles FROM pg_policies WHERE tablename = 'confluence_pages'"
            )
        }
        chunk_policies = conn.execute(
            "SELECT policyname, permissive, roles FROM pg_policies WHERE tablename = 'archon_crawled_pages'"
        ).fetchall()
    assert rls is True
    assert policies == {
        "Allow service role full access to confluence_pages": ("ALL", "PERMISSIVE", ["public"]),
        "Allow authenticated users to read confluence_pages": ("SELECT", "PERMISSIVE", ["authenticated"]),
        "Confluence pages: unrestricted pages only": ("SELECT", "RESTRICTIVE", ["authenticated"]),
    }
    assert chunk_policies == [("Confluence chunks: unrestricted pages only", "RESTRICTIVE", ["authenticated"])]


@pytest.mark.skipif(not ARCHON.is_dir(), reason="the team's ../shared/archon is not on this machine")
def test_on_supabase_anon_and_authenticated_read_only_unrestricted_confluence_rows(role_database):
    from confluence_assets.search.hybrid import vector_literal
    from confluence_assets_tests.search_data import Page, Site, lexical_embedding

    archon_on_supabase(role_database)
    migrations.migrate(role_database)
    with psycopg.connect(role_database, autocommit=True) as conn:
        site = Site(conn, dims=1536)
        text = "zephyr quartz runbook"
        site.add(Page("1", "ENG", "Open", [("Open", text)]))
        site.add(Page("2", "ENG", "Secret", [("Secret", text)], read_groups=("g-secret",)))
        site.add(Page("3", "ENG", "Under secret", [("Under", text)], parent="2"))
        site.add(Page("4", "ENG", "Not read yet", [("Unknown", text)], restriction_status="unknown"))
        site.add_web_chunk("web1", "https://example.com/zephyr", text)
        site.group("g-secret", ["acc-alice"])
        site.space_permissions("ENG", groups=["g-secret"])
        site.user("acc-alice", "alice@example.com")
        conn.execute("SET ivfflat.probes = 100")  # Archon's ivfflat indexes were built on an empty table
        open_rows = {"confluence://ENG/1", "https://example.com/zephyr"}
        every_row = open_rows | {"confluence://ENG/2", "confluence://ENG/3", "confluence://ENG/4"}
        vector = vector_literal(lexical_embedding(text, 1536))
        archon_calls = {
            "match_archon_crawled_pages": ("SELECT url FROM match_archon_crawled_pages(%s::vector, 50)", (vector,)),
            "hybrid_search_archon_crawled_pages": (
                "SELECT url FROM hybrid_search_archon_crawled_pages(%s::vector, %s, 50)",
                (vector, text),
            ),
        }
        for role in ("anon", "authenticated"):
            conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(role)))
            try:
                for table in ("confluence_sync_staged_pages", "confluence_sync_staged_chunks"):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(f"INSERT INTO {table} DEFAULT VALUES")  # noqa: S608 - our table names
                for table in OUR_PRIVATE_TABLES + ("confluence_page_access",):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(f"SELECT * FROM {table}")  # noqa: S608 - our table names
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("SELECT confluence_viewer_access('acc-alice')")
                urls = {r[0] for r in conn.execute("SELECT url FROM archon_crawled_pages")}
                assert urls == open_rows, role
                for name, (call, params) in archon_calls.items():  # Archon's own functions, kept on its database
                    assert {r[0] for r in conn.execute(call, params)} == open_rows, (role, name)
                pages = {r[0] for r in conn.execute("SELECT page_id FROM confluence_pages")}
                assert pages == ({"1"} if role == "authenticated" else set()), role  # anon: Archon's policies
            finally:
                conn.execute("RESET ROLE")
        # The table owner and service_role are not narrowed (they bypass row level security).
        assert {r[0] for r in conn.execute("SELECT url FROM archon_crawled_pages")} == every_row
        conn.execute("SET ROLE service_role")
        assert {r[0] for r in conn.execute("SELECT url FROM archon_crawled_pages")} == every_row
        conn.execute("RESET ROLE")
