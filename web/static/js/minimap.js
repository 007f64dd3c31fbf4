// Small maps on detail pages: the GeoJSON in <script type="application/json" id="minimap-data">.
(function () {
  "use strict";
  var el = document.getElementById("minimap");
  var data = document.getElementById("minimap-data");
  if (!el || !data || !window.L) { return; }
  var geojson = JSON.parse(data.textContent);
  var map = L.map(el, {preferCanvas: true, attributionControl: false});
  if (window.multiplanContext) { window.multiplanContext(map, el); }
  var colours = {forbidden: "#c0392b", major: "#e67e22", conditional: "#f1c40f", notice: "#7f8c8d",
                 prohibited: "#c0392b", compliant: "#1e8449", unknown: "#7f8c8d", site: "#000000"};
  var layer = L.geoJSON(geojson, {
    style: function (f) {
      var kind = (f.properties && (f.properties.severity || f.properties.verdict || f.properties.kind)) || "site";
      return {color: colours[kind] || "#1f6fb2", weight: kind === "site" ? 3 : 2, fillOpacity: 0.25};
    }
  }).addTo(map);
  var bounds = layer.getBounds();
  if (bounds.isValid()) { map.fitBounds(bounds.pad(0.6)); } else { map.setView([19.9, 110.3], 10); }
  el.dataset.ready = "1";
}());
