/* The campaign page's evidence graph (cytoscape.js, vendored). Data: /campaigns/<id>/graph.json. */
(function () {
  "use strict";
  var box = document.getElementById("graph");
  if (!box || typeof cytoscape === "undefined") { return; }
  // one colour per evidence kind, no two alike and no grey (grey is reserved for collapsed infrastructure)
  var KIND_COLOURS = {
    shared_payment: "#d62728", shared_payment_issuer: "#ff9896", lookalike_email_domain: "#9467bd",
    batch_creation: "#8c564b", shared_proxy_pool: "#e377c2", shared_template: "#1f77b4",
    shared_phrasing: "#17becf", synchronised_activity: "#2ca02c", shared_ip_prefix: "#bcbd22",
    shared_signup_network: "#ff7f0e", shared_email_domain: "#c5b0d5", shared_org: "#98df8a",
    shared_client_fingerprint: "#aec7e8", infrastructure: "#7f7f7f"
  };
  var VERDICT = { allow: "#4d8a57", watch: "#a67d0b", throttle: "#c6541d", block: "#a1202f" };
  function colour(kind) { return KIND_COLOURS[kind] || "#393b79"; }
  function el(tag, text) { var e = document.createElement(tag); if (text !== undefined) { e.textContent = text; } return e; }

  fetch(box.getAttribute("data-src"), { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (g) {
    document.getElementById("graph-stats").textContent = g.accounts + " accounts drawn as " + g.account_nodes +
      " account nodes and " + g.hubs + " evidence hubs";
    var legend = document.getElementById("graph-legend");
    g.kinds.forEach(function (k) {
      var s = el("span"); s.className = "swatch"; s.style.background = colour(k); legend.appendChild(s);
      legend.appendChild(document.createTextNode(k.replace(/_/g, " ")));
    });
    var cy = cytoscape({
      container: box, elements: g.elements, wheelSensitivity: 0.2, minZoom: 0.1, maxZoom: 4,
      style: [
        { selector: "node", style: { "label": "data(label)", "font-size": 9, "text-valign": "bottom", "text-margin-y": 2 } },
        { selector: "node.group", style: { "background-opacity": 0.06, "border-width": 1, "border-color": "#c5cbd3",
          "label": "data(label)", "text-valign": "top", "font-size": 11, "font-weight": "bold" } },
        { selector: "node.hub", style: { "shape": "diamond", "width": "mapData(size, 2, 200, 16, 46)",
          "height": "mapData(size, 2, 200, 16, 46)", "background-color": function (n) { return colour(n.data("kind")); } } },
        { selector: "node.account", style: { "width": 12, "height": 12, "background-color": function (n) { return VERDICT[n.data("verdict")] || "#555"; }, "label": "" } },
        { selector: "node.account:selected", style: { "label": "data(label)", "font-size": 8 } },
        { selector: "node.many", style: { "width": "mapData(count, 2, 300, 16, 60)", "height": "mapData(count, 2, 300, 16, 60)", "label": "data(label)", "font-size": 10 } },
        { selector: "edge", style: { "width": "mapData(weight, 1, 100, 1, 8)", "line-color": function (e) { return colour(e.data("kind")); }, "opacity": 0.6, "curve-style": "haystack" } },
        { selector: ".hidden", style: { "display": "none" } },
        { selector: ":selected", style: { "border-width": 3, "border-color": "#111" } }
      ],
      layout: { name: "preset" }
    });
    function layout() {
      cy.elements(":visible").layout({ name: "cose", animate: false, randomize: false, nodeRepulsion: 20000,
        idealEdgeLength: 90, nodeOverlap: 20, componentSpacing: 80, nestingFactor: 0.8, numIter: 1000, fit: true,
        padding: 24 }).run();
    }
    var toggle = document.getElementById("collapse-infra");
    function apply() {
      var collapsed = toggle.checked;
      cy.batch(function () {
        cy.elements(".infra").toggleClass("hidden", collapsed);
        cy.elements(".infra-collapsed").toggleClass("hidden", !collapsed);
        cy.nodes("#group\\:infrastructure").toggleClass("hidden", collapsed);
      });
    }
    toggle.addEventListener("change", function () { apply(); layout(); });
    apply();
    layout();
    var detail = document.getElementById("graph-detail");
    cy.on("tap", "node", function (evt) {
      var d = evt.target.data();
      detail.textContent = "";
      detail.appendChild(el("b", d.label));
      if (d.accounts) {
        var ul = el("ul");
        d.accounts.forEach(function (a) {
          var li = el("li"); var link = el("a", a); link.href = "/accounts/" + encodeURIComponent(a);
          li.appendChild(link); ul.appendChild(li);
        });
        detail.appendChild(ul);
      } else if (d.kind) {
        detail.appendChild(el("p", (d.size || "") + " accounts share this " + d.kind.replace(/_/g, " ")));
      }
    });
    window.dgGraph = cy;
  });
})();
