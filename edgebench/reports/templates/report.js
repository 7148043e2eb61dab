(function () {
  "use strict";
  // Sortable results table: click a header to sort, click again to reverse.
  function sortBy(table, index, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    function key(row) {
      var v = row.cells[index].getAttribute("data-v");
      if (v === null || v === "") return { empty: true };
      var n = Number(v);
      return isNaN(n) ? { s: v.toLowerCase() } : { n: n };
    }
    var keyed = rows.map(function (row, i) { return { row: row, k: key(row), i: i }; });
    keyed.sort(function (a, b) {
      if (a.k.empty || b.k.empty) return (a.k.empty ? 1 : 0) - (b.k.empty ? 1 : 0) || a.i - b.i; // blanks last
      var c = ("n" in a.k && "n" in b.k) ? a.k.n - b.k.n : String(a.k.s !== undefined ? a.k.s : a.k.n).localeCompare(String(b.k.s !== undefined ? b.k.s : b.k.n));
      return c * dir || a.i - b.i;
    });
    keyed.forEach(function (x) { body.appendChild(x.row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () { sortBy(table, i, th); });
      th.setAttribute("title", "click to sort");
    });
  });
  // Filter box: keep rows containing every word typed.
  var box = document.getElementById("filter");
  if (box) {
    box.addEventListener("input", function () {
      var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0, rows = document.querySelectorAll("table.results tbody tr");
      Array.prototype.forEach.call(rows, function (row) {
        var text = row.textContent.toLowerCase();
        var ok = words.every(function (w) { return text.indexOf(w) >= 0; });
        row.style.display = ok ? "" : "none";
        if (ok) shown++;
      });
      document.getElementById("shown").textContent = shown + " of " + rows.length + " rows";
    });
  }
})();
