/** Tiny DOM builders shared by the Runs panel and the run views. */

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = '',
  title = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  if (title) {
    node.title = title;
  }
  return node;
}

export function span(className: string, text: string, title = ''): HTMLSpanElement {
  return el('span', className, text, title);
}

export function badge(kind: string, text: string, title = ''): HTMLSpanElement {
  return span(`mlnb-badge mlnb-badge-${kind}`, text, title);
}

export function button(label: string, className: string, title: string): HTMLButtonElement {
  const node = el('button', `jp-Button jp-mod-styled jp-mod-minimal ${className}`, label, title);
  node.type = 'button';
  return node;
}

/** A link that opens outside JupyterLab (the MLflow UI). */
export function externalLink(href: string, text: string, className: string, title: string): HTMLAnchorElement {
  const node = el('a', className, text, title);
  node.href = href;
  node.target = '_blank';
  node.rel = 'noopener noreferrer';
  return node;
}

/** A table with a header row; `rows` of cell texts, each row optionally with classes and data. */
export function table(
  className: string,
  header: string[],
  rows: { cells: string[]; className?: string; data?: Record<string, string> }[]
): HTMLTableElement {
  const node = el('table', className);
  const head = node.createTHead().insertRow();
  header.forEach(title => head.appendChild(el('th', '', title)));
  const body = node.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    if (row.className) {
      tr.className = row.className;
    }
    Object.entries(row.data ?? {}).forEach(([k, v]) => (tr.dataset[k] = v));
    row.cells.forEach(text => (tr.insertCell().textContent = text));
  }
  return node;
}
