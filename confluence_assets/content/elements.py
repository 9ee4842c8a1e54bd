"""What Confluence's storage elements are, as tables the rewrite consults: panels, layout-only and code
macros, emoticons, block-level tags, which elements their parent's handler reads, and which to drop."""

# Panel macros, labelled as Cloud shows them: the legacy macros kept their names but not their looks
# (note is drawn as the yellow Warning panel, warning as the red Error panel, tip as the green Success one).
PANELS = {
    "info": "Info",
    "note": "Warning",
    "warning": "Error",
    "tip": "Success",
    "success": "Success",
    "error": "Error",
    "panel": "Panel",  # labelled by its panelType, icon or title (see widgets.WidgetRewrites._panel_kind)
}
# The new editor's panel types (the panel macro's panelType, an ADF panel's panel-type), as shown.
PANEL_TYPES = {
    "info": "Info",
    "note": "Note",
    "success": "Success",
    "warning": "Warning",
    "error": "Error",
    "custom": "Panel",  # or its icon, when it has one
}
# Macros that only lay out or generate content at view time: nothing of them belongs in the text.
LAYOUT_ONLY = {
    "toc",
    "anchor",
    "style",
    "children",
    "pagetree",
    "pagetreesearch",
    "recently-updated",
    "contentbylabel",
    "content-by-label",
    "livesearch",
    "search",
    "blog-posts",
    "change-history",
    "contributors",
    "contributors-summary",
    "popular-labels",
    "related-labels",
    "listlabels",
    "create-from-template",
    "profile-picture",
    "space-details",
    "attachments",
    "gallery",
    "pagebreak",
    "index",
    "navmap",
    "spaces",
    "recently-updated-dashboard",
}
CODE_MACROS = {"code", "noformat", "code-block", "codeblock", "sourcecode"}
FILE_MACROS = {"view-file", "viewpdf", "viewdoc", "viewxls", "viewppt", "viewfile", "multimedia", "pdf-viewer"}
INCLUDE_MACROS = {"include", "excerpt-include", "include-page"}
LANGUAGE_ALIASES = {"js": "javascript", "py": "python", "sh": "bash", "shell": "bash", "none": "", "text": ""}
EMOTICONS = {
    "smile": "🙂",
    "sad": "🙁",
    "cheeky": "😛",
    "laugh": "😀",
    "wink": "😉",
    "thumbs-up": "👍",
    "thumbs-down": "👎",
    "information": "ℹ️",
    "tick": "✅",
    "cross": "❌",
    "warning": "⚠️",
    "plus": "➕",
    "minus": "➖",
    "question": "❓",
    "light-on": "💡",
    "light-off": "💡",
    "yellow-star": "⭐",
    "red-star": "⭐",
    "green-star": "⭐",
    "blue-star": "⭐",
    "heart": "❤️",
    "broken-heart": "💔",
}
BLOCK_TAGS = {
    "p",
    "div",
    "li",
    "tr",
    "table",
    "ul",
    "ol",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "br",
    "hr",
    "td",
    "th",
    "dt",
    "dd",
}
# Children a handler of the parent consumes; met anywhere else they are strays.
CONSUMED_BY = {
    "ac:parameter": ("ac:structured-macro", "ac:macro"),
    "ac:plain-text-body": ("ac:structured-macro", "ac:macro"),
    "ac:rich-text-body": ("ac:structured-macro", "ac:macro"),
    "ac:link-body": ("ac:link",),
    "ac:plain-text-link-body": ("ac:link",),
    "ac:caption": ("ac:image",),
    "ac:task-body": ("ac:task",),
    "ac:task-status": ("ac:task",),
    "ac:task-id": ("ac:task",),
    "ac:task-uuid": ("ac:task",),
    "ac:adf-node": ("ac:adf-extension",),
    "ac:adf-fallback": ("ac:adf-extension",),
    "ac:adf-content": ("ac:adf-node",),
    "ac:adf-attribute": ("ac:adf-node",),
}
RENAME_BLOCK = {"ac:layout", "ac:layout-section", "ac:layout-cell", "ac:rich-text-body", "ac:adf-content"}
DROP = {"ac:placeholder", "ac:adf-mark", "ac:task-id", "ac:task-uuid", "ac:parameter", "ac:adf-attribute"}
