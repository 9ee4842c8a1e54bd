"""Storage-format XHTML as real Confluence pages contain it, built from a seeded random source.

Each block mirrors what the Confluence editor emits (see the samples and Atlassian's storage-format
reference): headings, paragraphs with marks, nested lists, tables with header rows, code macros with a
language and CDATA (including the ``]]>`` split Confluence writes), info/note/warning/tip panels, expand,
toc, status lozenges, task lists, layouts, page links (``ri:page``, also across spaces and to pages that
do not exist), user mentions (``ri:user ri:account-id``), Jira macros and ``/browse/KEY-123`` links,
external links, images (attachments and URLs), attachment links, emoticons, emoji and non-Latin text.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

WORDS = (
    "access agent alert api archive audit backup batch branch broker buffer build bundle cache canary "
    "certificate channel checkout cluster commit compiler config connector consumer container context "
    "controller cookie cron cursor dashboard database deadline debug dependency deploy digest disk dns "
    "docker domain driver endpoint engine environment event exporter failover feature filter firewall "
    "fixture gateway git grant graph handler hash header heap host hook index ingress inode instance "
    "integration inventory issue job journal kafka kernel key label lambda latency layer lease ledger "
    "limit listener load lock log loop manifest mapping memory merge mesh metric migration mirror model "
    "module monitor mount namespace network node notebook object offset operator owner package pager "
    "parser partition patch payload peer permission pipeline plugin policy pool port probe process "
    "profile protocol provider proxy query queue quota raft rate record redis region registry release "
    "replica report repository request resolver resource retry role rollback router runtime sandbox "
    "scheduler schema scope script secret segment sensor server service session shard signal snapshot "
    "socket source span spec stack stage storage stream subnet switch tag task template tenant thread "
    "ticket timeout token topic trace tracker transaction trigger tunnel upgrade upload user validator "
    "vault version volume webhook widget worker workflow zone"
).split()
TOPICS = (
    "Onboarding Runbook Architecture Roadmap Retrospective Postmortem Checklist Playbook Glossary FAQ "
    "Handbook Guidelines Overview Migration Benchmark Proposal Design Review Policy Procedure Standards "
    "Inventory Incident Release Tutorial Troubleshooting Reference Setup Configuration Monitoring Alerting "
    "Capacity Security Compliance Budget Hiring Interview Training Meeting Notes Decision Record"
).split()
ADJECTIVES = (
    "Quarterly Weekly Internal External Legacy Modern Secure Fast Shared Global Regional Primary Secondary "
    "Automated Manual Critical Optional Experimental Stable Draft Final Annual Daily Nightly Mobile Cloud "
    "Hybrid Offline Realtime Batch Public Private"
).split()
SECTION_TITLES = (
    "Overview",
    "Background",
    "Goals",
    "Non-goals",
    "Requirements",
    "Design",
    "Implementation",
    "Rollout",
    "Risks",
    "Open questions",
    "Prerequisites",
    "Steps",
    "Verification",
    "Troubleshooting",
    "References",
    "Appendix",
    "Decisions",
    "Action items",
    "Timeline",
    "Glossary",
)
NON_LATIN = (
    "이 문서는 서비스 배포 절차와 장애 대응 방법을 설명합니다. 관리자는 설정을 변경하기 전에 백업을 확인해야 합니다.",
    "このページではデータベースの移行手順を説明します。作業の前に必ずバックアップを取得してください。",
    "本页面介绍了系统监控与告警的配置方法。请在修改配置之前通知值班工程师。",
    "Эта страница описывает порядок обновления кластера и проверки резервных копий.",
    "تصف هذه الصفحة خطوات النشر والتحقق من النسخ الاحتياطية قبل التحديث.",
    "Αυτή η σελίδα περιγράφει τη διαδικασία ανάπτυξης και επαναφοράς της υπηρεσίας.",
    "यह पृष्ठ सेवा परिनियोजन और बैकअप सत्यापन की प्रक्रिया का वर्णन करता है।",
    "Ünïcödé nämes ärë fïnë: Zoë, François, Łukasz, Ørjan, Şebnem.",
)
EMOTICONS = (
    ("blue-star", ":rocket:", "1f680", "🚀"),
    ("smile", ":smile:", "1f642", "🙂"),
    ("tick", ":check_mark:", "atlassian-check_mark", "✅"),
    ("warning", ":warning:", "atlassian-warning", "⚠️"),
    ("light-on", ":bulb:", "1f4a1", "💡"),
)
RAW_EMOJI = ("🎉", "🔥", "👍", "🐛", "📌", "🙏", "✨", "🧪")
LANGUAGES = ("python", "java", "bash", "sql", "javascript", "yaml", "json", "go", "xml", "text")
CODE = {
    "python": 'def {w}_handler(event):\n    """Handle one {w} event."""\n    if not event:\n        return None\n'
    "    # retry {w} twice before giving up\n    for attempt in range(2):\n"
    '        print(f"{{attempt}}: <{w}> & done")\n',
    "java": "public class {W}Service {{\n    private final Map<String, {W}> cache = new HashMap<>();\n\n"
    "    public {W} find(String id) {{\n        return cache.get(id);\n    }}\n}}\n",
    "bash": "#!/usr/bin/env bash\nset -euo pipefail\n# restart the {w} worker\nkubectl rollout restart deploy/{w}"
    " && echo ok\n",
    "sql": "SELECT id, name, created_at\n  FROM {w}_events\n WHERE created_at >= now() - interval '1 day'\n"
    "   AND name <> ''\n ORDER BY created_at DESC;\n",
    "javascript": "export async function fetch{W}(id) {{\n  const res = await fetch(`/api/{w}/${{id}}`);\n"
    "  if (res.status !== 200 && res.status < 500) throw new Error('bad');\n  return res.json();\n}}\n",
    "yaml": '{w}:\n  enabled: true\n  replicas: 3\n  labels:\n    app: {w}\n    tier: "backend"\n',
    "json": '{{\n  "name": "{w}",\n  "limits": {{"cpu": "500m", "memory": "256Mi"}},\n  "tags": ["a", "b"]\n}}\n',
    "go": "func {W}(ctx context.Context) error {{\n\tif err := ctx.Err(); err != nil {{\n\t\treturn err\n\t}}\n"
    "\treturn nil\n}}\n",
    "xml": '<config name="{w}">\n  <item key="a" value="1"/>\n  <!-- note: x < y && y > z -->\n</config>\n',
    "text": "{w} log line 1\n{w} log line 2\n    indented continuation\nend of {w} log, marker ]]> inside\n",
}


def macro_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def cdata(text: str) -> str:
    """CDATA cannot contain ``]]>``; Confluence splits it exactly like this."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@dataclass
class PageContext:
    """What a page's body may refer to."""

    codename: str
    topic_words: Sequence[str]
    own_space: str
    space_titles: Sequence[str]  # titles in the page's space (link targets)
    other_spaces: Sequence[tuple[str, str]]  # (space key, title) elsewhere
    account_ids: Sequence[str]
    attachments: Sequence[str]  # file names attached to this page
    jira_projects: Sequence[str] = ("PROJ", "OPS", "SEC")


class StorageWriter:
    """Builds storage XHTML from a seeded ``random.Random``; one writer per corpus."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # A pool of sentences, built once: picking from it is what keeps 10,000 pages fast.
        self.sentences = [self._sentence() for _ in range(800)]

    def _sentence(self) -> str:
        rng = self.rng
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(2, 9999)))
        return " ".join(words).capitalize() + rng.choice((".", ".", ".", "?", "!"))

    # ------------------------------------------------------------------ inline

    def text(self, ctx: PageContext, n: int) -> str:
        rng = self.rng
        parts = [escape(rng.choice(self.sentences)) for _ in range(n)]
        # The page's own words, so lexical retrieval can find it.
        parts.insert(rng.randrange(len(parts) + 1), f"The {ctx.codename} {' '.join(ctx.topic_words).lower()} notes.")
        roll = rng.random()
        if roll < 0.15:
            parts.append("<strong>" + escape(rng.choice(self.sentences)) + "</strong>")
        elif roll < 0.25:
            parts.append("<em>R&amp;D</em> uses <code>" + rng.choice(WORDS) + "_id</code> &lt;= 10.")
        return " ".join(parts)

    def paragraph(self, ctx: PageContext) -> str:
        return f"<p>{self.text(ctx, self.rng.randint(1, 4))}</p>"

    # ------------------------------------------------------------------ blocks

    def heading(self, level: int, title: str) -> str:
        return f"<h{level}>{escape(title)}</h{level}>"

    def bullet_list(self, ctx: PageContext, depth: int = 0) -> str:
        rng = self.rng
        tag = rng.choice(("ul", "ol"))
        items = []
        for _ in range(rng.randint(2, 5)):
            inner = f"<p>{escape(rng.choice(self.sentences))}</p>"
            if depth < 2 and rng.random() < 0.25:
                inner += self.bullet_list(ctx, depth + 1)
            items.append(f"<li>{inner}</li>")
        return f"<{tag}>{''.join(items)}</{tag}>"

    def table(self, ctx: PageContext) -> str:
        rng = self.rng
        cols = rng.randint(2, 5)
        head = "".join(f"<th><p><strong>{escape(rng.choice(WORDS).title())}</strong></p></th>" for _ in range(cols))
        rows = [f"<tr>{head}</tr>"]
        for _ in range(rng.randint(2, 8)):
            cells = "".join(
                f"<td><p>{escape(' '.join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))))}</p></td>"
                for _ in range(cols)
            )
            rows.append(f"<tr>{cells}</tr>")
        cols_xml = "".join("<col />" for _ in range(cols))
        return (
            f'<table data-table-width="760" data-layout="default"><colgroup>{cols_xml}</colgroup>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    def code(self, ctx: PageContext) -> str:
        rng = self.rng
        language = rng.choice(LANGUAGES)
        word = rng.choice(WORDS)
        body = CODE[language].format(w=word, W=word.title())
        title = f'<ac:parameter ac:name="title">{word}.{language[:2]}</ac:parameter>' if rng.random() < 0.3 else ""
        numbers = '<ac:parameter ac:name="linenumbers">true</ac:parameter>' if rng.random() < 0.2 else ""
        return (
            f'<ac:structured-macro ac:name="code" ac:schema-version="1" ac:macro-id="{macro_id(rng)}">'
            f'<ac:parameter ac:name="language">{language}</ac:parameter>{title}{numbers}'
            f"<ac:plain-text-body>{cdata(body)}</ac:plain-text-body></ac:structured-macro>"
        )

    def panel(self, ctx: PageContext, kind: str | None = None) -> str:
        rng = self.rng
        kind = kind or rng.choice(("info", "note", "warning", "tip"))
        title = (
            f'<ac:parameter ac:name="title">{escape(rng.choice(SECTION_TITLES))}</ac:parameter>'
            if rng.random() < 0.4
            else ""
        )
        return (
            f'<ac:structured-macro ac:name="{kind}" ac:schema-version="1" ac:macro-id="{macro_id(rng)}">{title}'
            f"<ac:rich-text-body>{self.paragraph(ctx)}</ac:rich-text-body></ac:structured-macro>"
        )

    def expand(self, ctx: PageContext) -> str:
        rng = self.rng
        inner = self.paragraph(ctx) + (self.code(ctx) if rng.random() < 0.5 else self.bullet_list(ctx))
        return (
            f'<ac:structured-macro ac:name="expand" ac:schema-version="1" ac:macro-id="{macro_id(rng)}">'
            f'<ac:parameter ac:name="title">{escape(rng.choice(("Details", "Click to expand", "Logs", "펼치기")))}'
            f"</ac:parameter><ac:rich-text-body>{inner}</ac:rich-text-body></ac:structured-macro>"
        )

    def toc(self) -> str:
        return (
            f'<ac:structured-macro ac:name="toc" ac:schema-version="1" data-layout="default" '
            f'ac:macro-id="{macro_id(self.rng)}"><ac:parameter ac:name="maxLevel">3</ac:parameter>'
            "</ac:structured-macro>"
        )

    def status(self) -> str:
        colour, title = self.rng.choice(
            (("Green", "DONE"), ("Yellow", "IN PROGRESS"), ("Red", "BLOCKED"), ("Blue", "REVIEW"), ("Grey", "TODO"))
        )
        return (
            '<p>Status: <ac:structured-macro ac:name="status" ac:schema-version="1" '
            f'ac:macro-id="{macro_id(self.rng)}">'
            f'<ac:parameter ac:name="colour">{colour}</ac:parameter><ac:parameter ac:name="title">{title}'
            "</ac:parameter></ac:structured-macro></p>"
        )

    def tasks(self, ctx: PageContext) -> str:
        rng = self.rng
        items = []
        for i in range(rng.randint(1, 4)):
            done = "complete" if rng.random() < 0.5 else "incomplete"
            who = self.mention(ctx) + " " if rng.random() < 0.4 else ""
            items.append(
                f"<ac:task><ac:task-id>{i + 1}</ac:task-id><ac:task-status>{done}</ac:task-status>"
                f"<ac:task-body>{who}{escape(rng.choice(self.sentences))}</ac:task-body></ac:task>"
            )
        return f"<ac:task-list>{''.join(items)}</ac:task-list>"

    def mention(self, ctx: PageContext) -> str:
        return f'<ac:link><ri:user ri:account-id="{self.rng.choice(ctx.account_ids)}" /></ac:link>'

    def page_link(self, ctx: PageContext) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15 and ctx.other_spaces:
            key, title = rng.choice(ctx.other_spaces)
            target = f'<ri:page ri:space-key="{key}" ri:content-title="{escape(title, {chr(34): "&quot;"})}" />'
        elif roll < 0.2:
            target = '<ri:page ri:content-title="A page that was never written" />'
        else:
            title = rng.choice(ctx.space_titles)
            target = f'<ri:page ri:content-title="{escape(title, {chr(34): "&quot;"})}" />'
        if rng.random() < 0.5:
            body = cdata("see this page")
            return f"<ac:link>{target}<ac:plain-text-link-body>{body}</ac:plain-text-link-body></ac:link>"
        return f"<ac:link>{target}</ac:link>"

    def links(self, ctx: PageContext) -> str:
        rng = self.rng
        key = f"{rng.choice(ctx.jira_projects)}-{rng.randint(1, 4000)}"
        pieces = [
            f"See {self.page_link(ctx)} and {self.page_link(ctx)}.",
            f'Tracked in <a href="https://example.atlassian.net/browse/{key}">{key}</a>.',
            f'Upstream: <a href="https://www.postgresql.org/docs/current/{rng.choice(WORDS)}.html">'
            "PostgreSQL docs</a>.",
            f"Owner: {self.mention(ctx)}.",
        ]
        rng.shuffle(pieces)
        return "<p>" + " ".join(pieces[: rng.randint(2, 4)]) + "</p>"

    def jira(self, ctx: PageContext) -> str:
        rng = self.rng
        key = f"{rng.choice(ctx.jira_projects)}-{rng.randint(1, 4000)}"
        return (
            f'<p><ac:structured-macro ac:name="jira" ac:schema-version="1" ac:macro-id="{macro_id(rng)}">'
            '<ac:parameter ac:name="server">System JIRA</ac:parameter>'
            '<ac:parameter ac:name="serverId">5f6e8c2a-1b7d-3c4e-9a0b-2d1f0e9c8b7a</ac:parameter>'
            f'<ac:parameter ac:name="key">{key}</ac:parameter></ac:structured-macro></p>'
        )

    def image(self, ctx: PageContext) -> str:
        rng = self.rng
        images = [a for a in ctx.attachments if a.rsplit(".", 1)[-1] in ("png", "jpg", "gif", "svg")]
        if images and rng.random() < 0.8:
            target = f'<ri:attachment ri:filename="{escape(rng.choice(images), {chr(34): "&quot;"})}" />'
        else:
            target = f'<ri:url ri:value="https://example.com/img/{rng.choice(WORDS)}.png" />'
        return (
            f'<ac:image ac:align="center" ac:layout="center" ac:alt="{rng.choice(WORDS)} diagram" '
            f'ac:width="{rng.choice((400, 600, 760))}">{target}</ac:image>'
        )

    def attachment_link(self, ctx: PageContext) -> str:
        if not ctx.attachments:
            return self.paragraph(ctx)
        name = escape(self.rng.choice(ctx.attachments), {'"': "&quot;"})
        return (
            f'<p>Download <ac:link><ri:attachment ri:filename="{name}" />'
            f"<ac:plain-text-link-body>{cdata('the file')}</ac:plain-text-link-body></ac:link>.</p>"
        )

    def emoji(self, ctx: PageContext) -> str:
        rng = self.rng
        name, short, eid, fallback = rng.choice(EMOTICONS)
        emoticon = (
            f'<ac:emoticon ac:name="{name}" ac:emoji-shortname="{short}" ac:emoji-id="{eid}" '
            f'ac:emoji-fallback="{fallback}" />'
        )
        return f"<p>{emoticon} {escape(rng.choice(self.sentences))} {rng.choice(RAW_EMOJI)}</p>"

    def non_latin(self) -> str:
        return f"<p>{escape(self.rng.choice(NON_LATIN))}</p>"

    def layout(self, ctx: PageContext, cells: int = 2) -> str:
        kind = "two_equal" if cells == 2 else "three_equal"
        inner = "".join(f"<ac:layout-cell>{self.paragraph(ctx)}</ac:layout-cell>" for _ in range(cells))
        return (
            f'<ac:layout><ac:layout-section ac:type="{kind}" ac:breakout-mode="default">{inner}'
            "</ac:layout-section></ac:layout>"
        )

    # ------------------------------------------------------------------ pages

    def kitchen_sink(self, ctx: PageContext) -> str:
        """One of every construct: the first content page of every space has it."""
        return "".join(
            [
                self.toc(),
                self.heading(1, "Everything a page can hold"),
                self.paragraph(ctx),
                self.bullet_list(ctx),
                self.heading(2, "Tables and code"),
                self.table(ctx),
                self.code(ctx),
                self.panel(ctx, "info"),
                self.panel(ctx, "note"),
                self.panel(ctx, "warning"),
                self.panel(ctx, "tip"),
                self.expand(ctx),
                self.heading(2, "Links"),
                self.status(),
                self.tasks(ctx),
                self.links(ctx),
                self.jira(ctx),
                self.image(ctx),
                self.attachment_link(ctx),
                self.emoji(ctx),
                self.non_latin(),
                self.layout(ctx),
            ]
        )

    def page(self, ctx: PageContext) -> str:
        rng = self.rng
        parts: list[str] = []
        if rng.random() < 0.3:
            parts.append(self.toc())
        blocks = (
            self.paragraph,
            self.paragraph,
            self.paragraph,
            self.bullet_list,
            self.table,
            self.code,
            self.panel,
            self.expand,
            self.tasks,
            self.links,
            self.links,
            self.jira,
            self.image,
            self.attachment_link,
            self.emoji,
        )
        titles = list(SECTION_TITLES)
        rng.shuffle(titles)
        for title in titles[: rng.randint(1, 6)]:
            parts.append(self.heading(2, title))
            parts.append(self.paragraph(ctx))
            for _ in range(rng.randint(0, 3)):
                parts.append(rng.choice(blocks)(ctx))
            if rng.random() < 0.25:
                parts.append(self.heading(3, f"{title}: {rng.choice(WORDS)}"))
                parts.append(self.paragraph(ctx))
            if rng.random() < 0.08:
                parts.append(self.non_latin())
            if rng.random() < 0.05:
                parts.append(self.status())
        body = "".join(parts)
        return self.layout_wrap(body) if rng.random() < 0.1 else body

    def layout_wrap(self, body: str) -> str:
        return (
            f'<ac:layout><ac:layout-section ac:type="fixed-width" ac:breakout-mode="default"><ac:layout-cell>'
            f"{body}</ac:layout-cell></ac:layout-section></ac:layout>"
        )

    def large_page(self, ctx: PageContext, min_bytes: int = 1_100_000) -> str:
        """A page of at least ``min_bytes`` (UTF-8): many sections, long tables and code."""
        chunks: list[str] = []
        size = 0
        n = 0
        while size < min_bytes:
            n += 1
            chunk = self.heading(2, f"Part {n}") + self.page(ctx) + self.table(ctx) + self.code(ctx)
            chunks.append(chunk)
            size += len(chunk.encode())
        return "".join(chunks)
