// The master plan as context under a small map: its current version's vector tiles, by class group.
window.multiplanContext = function (map, el) {
  "use strict";
  var template = el.dataset.tiles;
  if (!template || !L.vectorGrid) { return null; }
  if (!L.DomEvent.fakeStop) { L.DomEvent.fakeStop = L.DomEvent.stopPropagation; }  // VectorGrid 1.3 on Leaflet 1.9
  var colours = JSON.parse(el.dataset.colours || "{}");  // the palette of multiplan.reports.CLASS_COLOURS
  return L.vectorGrid.protobuf(template, {
    vectorTileLayerStyles: {overall: function (p) {
      return {fill: true, fillColor: colours[String(p.ydyh_code || "").slice(0, 2)] || "#d5dbdb",
              fillOpacity: 0.45, color: "#ffffff", weight: 0.6};
    }},
    interactive: false, maxNativeZoom: 20, rendererFactory: L.canvas.tile,
    fetchOptions: {credentials: "same-origin"}
  }).addTo(map);
};
