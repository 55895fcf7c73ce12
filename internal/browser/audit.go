package browser

import "context"

// auditJS checks the page's markup for what assistive technology needs:
// a language, a name for every control, link and dialog, a text
// alternative for every image, unique ids, no positive tabindex (which
// breaks the focus order), and a top-level heading. It returns one line
// per problem.
const auditJS = `(() => {
  const problems = [];
  const describe = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\s+/).join(".") : "");
  const named = (e) => {
    if ((e.getAttribute("aria-label") || "").trim()) return true;
    const by = e.getAttribute("aria-labelledby");
    if (by && by.split(/\s+/).every((id) => document.getElementById(id)?.textContent.trim())) return true;
    if (e.title && e.title.trim()) return true;
    if (e.labels && [...e.labels].some((l) => l.textContent.trim())) return true;
    return false;
  };
  if (!document.documentElement.lang) problems.push("html has no lang");
  for (const e of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!named(e)) problems.push("control without a label: " + describe(e));
  }
  for (const e of document.querySelectorAll("button, a[href], [role=button]")) {
    if (!named(e) && !e.textContent.trim()) problems.push("control without a name: " + describe(e));
  }
  for (const e of document.querySelectorAll("img")) {
    if (!e.hasAttribute("alt")) problems.push("image without alt: " + describe(e));
  }
  for (const e of document.querySelectorAll("dialog, [role=dialog], [role=alertdialog]")) {
    if (!named(e)) problems.push("dialog without a name: " + describe(e));
  }
  const seen = new Set();
  for (const e of document.querySelectorAll("[id]")) {
    if (seen.has(e.id)) problems.push("duplicate id: " + e.id);
    seen.add(e.id);
  }
  for (const e of document.querySelectorAll("[tabindex]")) {
    if (e.tabIndex > 0) problems.push("positive tabindex: " + describe(e));
  }
  if (!document.querySelector("h1")) problems.push("no h1");
  return problems;
})()`

// Audit checks the page's markup for accessibility problems (see auditJS)
// and returns them, one line each.
func (p *Page) Audit(ctx context.Context) ([]string, error) {
	var problems []string
	err := p.Eval(ctx, auditJS, &problems)
	return problems, err
}
