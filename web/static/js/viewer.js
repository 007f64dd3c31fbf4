/* The one-map viewer (一张图): Leaflet + Leaflet.VectorGrid over /tiles, popups fed by /map/… as JSON.
 *
 * Every value from the data is shown with textContent, never as HTML. Hooks for browser tests:
 *   #onemap                      the map
 *   input[data-layer="<id>"]     a layer switch (plan layer ids, "conflicts", "approvals")
 *   #county-filter, #code-search, #code-input, #search-message
 *   .feature-popup               the content of the open popup
 *   body[data-tiles-loaded="1"]  once the first tiles have loaded
 *   body[data-popup-loaded="1"]  once the open popup's content has arrived ("error" when it failed)
 *   window.onemapViewer          {map, layers, openFeature(kind, properties, latlng)}
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("onemap-config").textContent);
  var body = document.body;

  // Leaflet.VectorGrid 1.3 still calls L.DomEvent.fakeStop, which Leaflet 1.8 removed
  if (!L.DomEvent.fakeStop) {
    L.DomEvent.fakeStop = L.DomEvent.stopPropagation;
  }

  var map = L.map("onemap", { minZoom: 4, maxZoom: 20, zoomSnap: 0.5 });
  map.getContainer().style.background = "#f4f6f8"; // no basemap offline: a light background
  L.control.scale({ imperial: false }).addTo(map);

  function fitTo(b) {
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { padding: [16, 16], maxZoom: 17 });
  }
  fitTo(config.bounds);

  // panes keep plans under networks under conflicts under approval sites, whatever is switched on first
  [["plans", 410], ["networks", 420], ["conflicts", 430], ["approvals", 440]].forEach(function (p) {
    map.createPane(p[0]).style.zIndex = p[1];
  });

  // -- styles ------------------------------------------------------------------------------------------
  function classColour(code) {
    return (code && config.classColours[String(code).slice(0, 2)]) || "#cccccc";
  }

  function planStyle(layer) {
    if (layer.network) {
      return function () {
        return { color: layer.colour, weight: 2.5, opacity: 0.9 };
      };
    }
    return function (props) {
      return {
        fill: true, fillColor: classColour(props.ydyh_code), fillOpacity: 0.55,
        color: layer.colour, weight: layer.id === "eco_redline" ? 2 : 0.6, opacity: 0.9
      };
    };
  }

  function conflictStyle(props) {
    var c = config.severityColours[props.severity] || "#7f8c8d";
    return { fill: true, fillColor: c, fillOpacity: 0.65, color: c, weight: 1.2, opacity: 1 };
  }

  function approvalStyle(props) {
    var c = config.verdictColours[props.latest_verdict] || config.verdictColours.none;
    return { fill: true, fillColor: c, fillOpacity: 0.2, color: c, weight: 2.5, opacity: 1, dashArray: "6 3" };
  }

  // -- layers ------------------------------------------------------------------------------------------
  function tileUrl(id, version) {
    return config.tilesBase + encodeURIComponent(id) + "/" + encodeURIComponent(version) + "/{z}/{x}/{y}.pbf";
  }

  function markLoaded() {
    body.dataset.tilesLoaded = "1";
  }

  function vectorLayer(id, version, style, pane, idField, b) {
    var styles = {};
    styles[id] = style;
    var layer = L.vectorGrid.protobuf(tileUrl(id, version), {
      // no requests for tiles outside the layer's data (a little margin for the tile buffer)
      bounds: b ? L.latLngBounds([[b[1], b[0]], [b[3], b[2]]]).pad(0.02) : undefined,
      vectorTileLayerStyles: styles,
      interactive: true,
      pane: pane,
      maxNativeZoom: 20,
      rendererFactory: L.svg.tile,
      fetchOptions: { credentials: "same-origin" },
      getFeatureId: function (f) { return f.properties[idField]; }
    });
    layer.on("load", markLoaded);
    layer.on("click", function (e) {
      if (e.layer && e.layer.properties) {
        openFeature(id, e.layer.properties, e.latlng, version);
      }
    });
    return layer;
  }

  var layers = {};
  var versions = {};
  config.layers.forEach(function (l) {
    layers[l.id] = vectorLayer(l.id, l.version, planStyle(l), l.network ? "networks" : "plans", "feature_key",
      l.bounds);
    versions[l.id] = l.version;
  });
  if (config.conflicts) {
    layers.conflicts = vectorLayer("conflicts", config.conflicts.version, conflictStyle, "conflicts", "conflict_id",
      config.conflicts.bounds);
  }
  layers.approvals = vectorLayer("approvals", 0, approvalStyle, "approvals", "code", config.approvals.bounds);

  var switchedOn = 0;
  Array.prototype.forEach.call(document.querySelectorAll("input[data-layer]"), function (box) {
    var layer = layers[box.dataset.layer];
    if (!layer) {
      return;
    }
    if (box.checked) {
      layer.addTo(map);
      switchedOn += 1;
    }
    box.addEventListener("change", function () {
      if (box.checked) {
        layer.addTo(map);
      } else {
        map.removeLayer(layer);
      }
    });
  });
  if (!switchedOn) {
    markLoaded(); // nothing to draw: nothing to wait for
  }

  // -- popups: built from text nodes only ----------------------------------------------------------------
  function el(tag, text, className) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) {
      e.textContent = String(text);
    }
    if (className) {
      e.className = className;
    }
    return e;
  }

  function label(key) {
    return config.labels[key] || key;
  }

  function shown(key, value) {
    if (value === null || value === undefined || value === "") {
      return null;
    }
    var v = config.values;
    if (key === "severity" && v.severity[value]) { return v.severity[value]; }
    if ((key === "latest_verdict" || key === "verdict") && v.verdict[value]) { return v.verdict[value]; }
    if ((key === "layer_a" || key === "layer_b" || key === "other_layer") && v.layer[value]) { return v.layer[value]; }
    if (typeof value === "number") {
      return Math.abs(value) >= 100 ? value.toLocaleString(undefined, { maximumFractionDigits: 1 })
        : String(Math.round(value * 1000) / 1000);
    }
    if (typeof value === "object") {
      return JSON.stringify(value);
    }
    return String(value);
  }

  function statusText(kind, value) {
    var names = kind === "approval" ? config.values.approvalStatus : config.values.conflictStatus;
    return names[value] || value;
  }

  function table(rows) {
    var t = el("table", null, "attributes");
    rows.forEach(function (r) {
      if (r[1] === null || r[1] === undefined) {
        return;
      }
      var tr = el("tr");
      tr.appendChild(el("th", r[0]));
      tr.appendChild(el("td", r[1]));
      t.appendChild(tr);
    });
    return t;
  }

  function fields(record, keys, statusKind) {
    return keys.filter(function (k) { return k in record; }).map(function (k) {
      var value = k === "status" && record[k] ? statusText(statusKind, record[k]) : shown(k, record[k]);
      return [label(k), value];
    });
  }

  function section(box, title, items, render) {
    box.appendChild(el("h5", title));
    if (!items || !items.length) {
      box.appendChild(el("p", config.text.map_none, "muted"));
      return;
    }
    var ul = el("ul");
    items.forEach(function (item) { ul.appendChild(render(item)); });
    box.appendChild(ul);
  }

  function linkButton(text, onClick) {
    var b = el("button", text, "popup-link");
    b.type = "button";
    b.style.cssText = "background:none;border:none;padding:0;color:#1f6fb2;cursor:pointer;text-decoration:underline";
    b.addEventListener("click", onClick);
    return b;
  }

  function detailsLink(kind, id) {
    var base = config.pages[kind];
    if (!base) {
      return null;
    }
    var a = el("a", config.text.map_details, "details-link");
    a.href = base + encodeURIComponent(id);
    var p = el("p");
    p.appendChild(a);
    return p;
  }

  function append(box, child) {
    if (child) {
      box.appendChild(child);
    }
  }

  function conflictItem(latlng) {
    return function (c) {
      var li = el("li");
      li.dataset.conflictId = c.conflict_id;
      li.appendChild(linkButton(c.conflict_id, function () { openFeature("conflicts", { conflict_id: c.conflict_id }, latlng); }));
      var words = [shown("severity", c.severity), c.rule, statusText("conflict", c.status)];
      if (c.other_layer) {
        words.push(shown("other_layer", c.other_layer) + " " + (c.other_feature || ""));
      }
      li.appendChild(el("span", " " + words.filter(Boolean).join(" · ")));
      return li;
    };
  }

  function approvalItem(a) {
    var li = el("li");
    li.dataset.approvalCode = a.code;
    li.appendChild(linkButton(a.code, function () { findProject(a.code); }));
    li.appendChild(el("span", " " + [a.name, shown("verdict", a.verdict), statusText("approval", a.status)]
      .filter(Boolean).join(" · ")));
    return li;
  }

  function renderPlan(box, data, latlng) {
    box.appendChild(el("h4", data.layer_title + " · " + data.feature_key));
    box.appendChild(el("p", config.text.map_version + " " + data.version, "muted"));
    box.appendChild(table(fields(data.attributes, ["feature_key", "feature_no", "ydyh_code", "ydyh_name",
      "ydyh_match", "orig_code", "zone_code", "xzqdm", "level", "corridor_m", "area_m2", "length_m"])));
    if (data.matches > 1) {
      box.appendChild(el("p", config.text.map_matches + ": " + data.matches, "muted"));
    }
    box.appendChild(el("h5", config.text.map_source_attributes));
    var src = data.source_attributes || {};
    box.appendChild(table(Object.keys(src).map(function (k) { return [k, shown(k, src[k])]; })));
    section(box, config.text.map_linked_conflicts, data.conflicts, conflictItem(latlng));
    section(box, config.text.map_linked_approvals, data.approvals, approvalItem);
  }

  function renderConflict(box, data) {
    var c = data.case;
    box.appendChild(el("h4", label("conflict_id") + " " + data.conflict_id));
    append(box, detailsLink("conflict", data.conflict_id));
    box.appendChild(table(fields(c, ["rule", "severity", "status", "layer_a", "feature_a", "version_a", "layer_b",
      "feature_b", "version_b", "xzqdm", "area_m2", "give_way", "suggestion", "first_run", "last_run",
      "updated_at"], "conflict")));
    section(box, config.text.map_linked_approvals, data.approvals, approvalItem);
    section(box, config.text.map_history, (data.events || []).slice(-5), function (e) {
      return el("li", [e.at, e.kind, e.from_status && statusText("conflict", e.from_status),
        e.to_status && statusText("conflict", e.to_status), e.author, e.text].filter(Boolean).join(" · "));
    });
  }

  function renderApproval(box, data, latlng) {
    box.appendChild(el("h4", data.record.name || data.code));
    append(box, detailsLink("approval", data.code));
    box.appendChild(table(fields(data.record, ["code", "name", "applicant", "stage", "status", "applied_on",
      "decided_on", "officer", "latest_verdict", "notes"], "approval")));
    section(box, config.text.map_linked_conflicts, data.conflicts, conflictItem(latlng));
  }

  var popup = L.popup({ maxWidth: 440, minWidth: 260, maxHeight: 380, autoPanPadding: [20, 20] });

  function popupBox(latlng) {
    var box = el("div", null, "feature-popup");
    box.appendChild(el("p", config.text.map_loading, "muted"));
    body.dataset.popupLoaded = "0";
    popup.setLatLng(latlng).setContent(box).openOn(map);
    return box;
  }

  function fill(box, kind, data, latlng) {
    box.textContent = "";
    box.dataset.kind = kind;
    if (kind === "conflicts") {
      renderConflict(box, data);
    } else if (kind === "approvals") {
      renderApproval(box, data, latlng);
    } else {
      renderPlan(box, data, latlng);
    }
    popup.update();
    body.dataset.popupLoaded = "1";
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) {
        throw new Error(String(r.status));
      }
      return r.json();
    });
  }

  function failed(box, err) {
    box.textContent = "";
    box.appendChild(el("p", config.text.map_load_failed + " (" + err.message + ")", "error"));
    body.dataset.popupLoaded = "error";
  }

  function openFeature(kind, props, latlng, version) {
    var url;
    if (kind === "conflicts") {
      url = config.conflictUrl + encodeURIComponent(props.conflict_id);
    } else if (kind === "approvals") {
      url = config.approvalUrl + encodeURIComponent(props.code);
    } else {
      url = config.featureUrl + encodeURIComponent(kind) + "/" + encodeURIComponent(version || versions[kind]) +
        "/" + encodeURIComponent(props.feature_key);
    }
    var box = popupBox(latlng);
    getJSON(url).then(function (data) { fill(box, kind, data, latlng); }, function (err) { failed(box, err); });
  }

  // -- filters -----------------------------------------------------------------------------------------
  var county = document.getElementById("county-filter");
  if (county) {
    county.addEventListener("change", function () {
      fitTo(county.value && config.counties[county.value] ? config.counties[county.value] : config.bounds);
    });
  }

  var message = document.getElementById("search-message");

  function findProject(code) {
    message.textContent = "";
    body.dataset.searchDone = "0";
    return getJSON(config.approvalUrl + encodeURIComponent(code)).then(function (data) {
      if (!data.bounds) {
        throw new Error("no site");
      }
      // done once the map has arrived: a click during the zoom animation would be lost
      var arrived = function () {
        map.off("moveend", arrived);
        body.dataset.searchDone = "1";
      };
      map.on("moveend", arrived);
      fitTo(data.bounds);
      setTimeout(arrived, 1500); // a fit that moves nothing fires no moveend
      var latlng = L.latLng(data.center[1], data.center[0]);
      var box = popupBox(latlng);
      fill(box, "approvals", data, latlng);
    }).catch(function () {
      message.textContent = config.text.map_not_found;
      body.dataset.searchDone = "error";
    });
  }

  var search = document.getElementById("code-search");
  if (search) {
    search.addEventListener("submit", function (e) {
      e.preventDefault();
      var code = document.getElementById("code-input").value.trim();
      if (code) {
        findProject(code);
      }
    });
  }

  window.onemapViewer = { map: map, layers: layers, openFeature: openFeature, findProject: findProject };
}());
