(function () {
  "use strict";
  // The per-question viewer. Data comes from the JSON block above (parsed, never evaluated), and
  // every piece of it reaches the page through textContent or an attribute: model text stays text.
  var data = JSON.parse(document.getElementById("mmad-data").textContent);
  var PAGE = 20;
  var LETTERS = "ABCDE";
  var S = data.strings;
  var state = { run: 0, subtask: "", category: "", outcome: "", search: "", page: 0 };
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function option(select, value, label) {
    var node = document.createElement("option");
    node.value = value;
    node.textContent = label;
    select.appendChild(node);
  }

  function questionId(q) {
    var key = data.keys[q[0]][0];
    return /^\d+$/.test(q[1]) ? key + "#" + q[1] : q[1];
  }

  function gold(row, q) { return row.length > 4 ? row[4] : q[5]; }

  function outcome(row, q) {
    if (data.statuses[row[1]] !== "answered") return "unanswered";
    return row[2] === gold(row, q) ? "right" : "wrong";
  }

  function matches(row) {
    var q = data.questions[row[0]];
    if (state.subtask !== "" && String(q[2]) !== state.subtask) return false;
    if (state.category !== "" && String(data.keys[q[0]][2]) !== state.category) return false;
    if (state.outcome !== "" && outcome(row, q) !== state.outcome) return false;
    if (state.search !== "") {
      var needle = state.search.toLowerCase();
      if (questionId(q).toLowerCase().indexOf(needle) < 0 && S[q[3]].toLowerCase().indexOf(needle) < 0) return false;
    }
    return true;
  }

  function thumb(index, label) {
    var figure = el("figure");
    var source = index === null || index === undefined ? null : data.thumbs[index];
    if (source) {
      var img = document.createElement("img");
      img.src = source;
      img.alt = label;
      figure.appendChild(img);
    } else {
      figure.appendChild(el("div", "missing", "no image"));
    }
    figure.appendChild(el("figcaption", null, label));
    return figure;
  }

  function card(row, run) {
    var q = data.questions[row[0]];
    var key = data.keys[q[0]];
    var verdict = outcome(row, q);
    var box = el("article", "sample " + verdict);
    box.dataset.outcome = verdict;
    var thumbs = el("div", "thumbs");
    (run.templates[String(q[0])] || []).forEach(function (t, i) { thumbs.appendChild(thumb(t, "template " + (i + 1))); });
    thumbs.appendChild(thumb(key[1], "query"));
    box.appendChild(thumbs);
    var subtask = q[2] >= 0 ? data.subtasks[q[2]] : "unknown subtask";
    box.appendChild(el("div", "head", questionId(q) + " · " + subtask + " · " + data.categories[key[2]] + " · " + key[3]));
    box.appendChild(el("div", "qtext", S[q[3]]));
    var list = el("ol", "options");
    var goldLetter = gold(row, q);
    q[4].forEach(function (opt, i) {
      var letter = Array.isArray(opt) ? opt[0] : LETTERS.charAt(i);
      var text = S[Array.isArray(opt) ? opt[1] : opt];
      var item = el("li", null, letter + ". " + text);
      if (letter === goldLetter) item.classList.add("gold");
      if (letter === row[2]) item.classList.add("picked");
      list.appendChild(item);
    });
    box.appendChild(list);
    var line = el("div", "verdict");
    line.appendChild(el("b", verdict, verdict === "unanswered" ? "no answer" : verdict));
    line.appendChild(document.createTextNode(
      " · parsed " + (row[2] || "–") + " · gold " + goldLetter + " · status " + data.statuses[row[1]]));
    box.appendChild(line);
    box.appendChild(el("pre", "reply", S[row[3]]));
    var talk = run.tools && run.tools[String(row[0])];
    if (talk) box.appendChild(conversation(talk));
    return box;
  }

  // A tools run's conversation after the question: each turn's role, text and tool images.
  function conversation(talk) {
    var details = el("details", "tools");
    details.appendChild(el("summary", null,
      "tool conversation · " + talk.calls + " call(s) · direct answer " + (talk.direct || "–")));
    talk.turns.forEach(function (turn) {
      var part = el("div", "turn " + turn[0]);
      part.appendChild(el("b", null, turn[0]));
      part.appendChild(el("pre", "reply", S[turn[1]]));
      if (turn[2].length) {
        var images = el("div", "thumbs");
        turn[2].forEach(function (index, n) { images.appendChild(thumb(index, "tool image " + (n + 1))); });
        part.appendChild(images);
      }
      details.appendChild(part);
    });
    return details;
  }

  function render() {
    var run = data.runs[state.run];
    var list = $("samples-list");
    if (!run) { list.replaceChildren(el("p", "note", "No runs.")); return; }
    var hits = run.rows.filter(matches);
    var pages = Math.max(1, Math.ceil(hits.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    var count = $("sample-count");
    count.dataset.count = String(hits.length);
    count.textContent = hits.length.toLocaleString("en") + " of " + run.rows.length.toLocaleString("en") + " questions";
    $("page-label").textContent = "page " + (state.page + 1) + " of " + pages;
    $("page-prev").disabled = state.page === 0;
    $("page-next").disabled = state.page >= pages - 1;
    var shown = hits.slice(state.page * PAGE, (state.page + 1) * PAGE).map(function (row) { return card(row, run); });
    list.replaceChildren.apply(list, shown.length ? shown : [el("p", "note", "No question matches these filters.")]);
  }

  function init() {
    data.runs.forEach(function (run, i) { option($("f-run"), String(i), run.name); });
    data.subtasks.forEach(function (name, i) { option($("f-subtask"), String(i), name); });
    data.categories
      .map(function (name, i) { return [name, i]; })
      .sort(function (a, b) { return a[0] < b[0] ? -1 : 1; })
      .forEach(function (pair) { option($("f-category"), String(pair[1]), pair[0]); });
    var bind = function (id, field, event) {
      $(id).addEventListener(event || "change", function (e) {
        state[field] = field === "run" ? Number(e.target.value) : e.target.value;
        state.page = 0;
        render();
      });
    };
    bind("f-run", "run");
    bind("f-subtask", "subtask");
    bind("f-category", "category");
    bind("f-outcome", "outcome");
    bind("f-search", "search", "input");
    $("page-prev").addEventListener("click", function () { state.page -= 1; render(); });
    $("page-next").addEventListener("click", function () { state.page += 1; render(); });
    render();
  }

  init();
})();
