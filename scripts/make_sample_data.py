#!/usr/bin/env python
"""Generate the 琼北县 demo data set: a small fictional county on Hainan's north coast.

    python scripts/make_sample_data.py [--out DIR] [--no-check]

All twelve plan layers are derived from one seeded "truth" map (a Voronoi tessellation of the
county, bent by a smooth warp so the edges look hand-drawn), so the plans agree with each other
except where conflicts are planted on purpose.  The planted conflicts are then measured by a small
rule engine in this script (the DOMAIN.md section 4 rules) and written to planted_conflicts.csv; a
design error that creates an unplanned conflict aborts the run.  Finally every written file is read
back the way a user would read it (GBK .dbf, no .prj, zone-prefixed CRS, ...) and re-measured.

The output is deterministic: fixed seeds, fixed dates in the .dbf headers and zip entries.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import rasterio.features
import shapely
import yaml
from pyproj import Geod, Transformer
from rasterio.transform import from_origin
from shapely.geometry import LineString, MultiPoint, Point, Polygon, box
from shapely.ops import polylabel

ROOT = Path(__file__).resolve().parent.parent
LAYER_IDS = ("overall", "land_use", "urban", "farmland", "forest", "ocean", "eco_redline",
             "road", "fiber", "power", "gas", "water")
NETWORKS = ("road", "fiber", "power", "gas", "water")
COVERAGE = ("overall", "land_use", "urban", "ocean")

SEED = 20240630
XZQDM = "469099"
XZQMC = "琼北县"
LON0, LAT0 = 110.20, 19.74      # south-west corner of the county
W = 21000.0                     # west-east extent of the land part (m)
SEA_TOP = 26500.0               # northern limit of the county's sea (local y, m)
GRID = 0.001                    # 1 mm precision grid for every overlay
METRIC = 4546                   # CGCS2000 / 3-degree GK CM 111E: working CRS
ZIP_DATE = (2024, 6, 30, 0, 0, 0)
DBF_DATE = bytes([124, 6, 30])  # .dbf header "last update": 2024-06-30
GPKG_DATE = "2024-06-30T00:00:00.000Z"
DEM_CELL = 30.0
SLOPE_LIMIT = 25.0
MIN_HIT = 1.0                   # m²; anything smaller is floating-point dust

# design anchors, local metres from the county's south-west corner
TOWN = (11800.0, 17700.0, 3300.0, 1800.0)       # county seat (ellipse cx, cy, rx, ry)
IND = (16100.0, 17300.0, 1300.0, 1000.0)        # 临港产业园
PORT = (12900.0, 18150.0)
ESTUARY = (6000.0, 18900.0)
H1, H1_R, H1_CORE = (3500.0, 3000.0), 2600.0, 1500.0    # 西部火山群
H2, H2_R, H2_CORE = (17500.0, 2600.0), 1800.0, 900.0    # 东岭
H3, H3_R = (14000.0, 5800.0), 900.0                     # 马占岭 (commercial forest)
RESERVOIR = (13500.0, 3500.0)
KNOLLS = ((14500.0, 10300.0), (5200.0, 13600.0))        # steep knolls for the slope patches
TOWNS = {"城关镇": (11800.0, 17700.0), "岭北镇": (4000.0, 9500.0),
         "东岭镇": (16500.0, 7000.0), "西江镇": (8500.0, 13000.0)}
SEA_ZONES = {  # key: (GNQLX, name, overall YDYHFLDM, overall GHFQDM, management note)
    "Z6A": ("6", "西江口红树林海洋保护区", "24", "01", "禁止围填海和破坏红树林的开发活动"),
    "Z6B": ("6", "东岭湾珊瑚礁海洋保护区", "24", "01", "保护珊瑚礁生态系统，禁止炸礁采挖"),
    "Z2": ("2", "琼北港口航运区", "2002", "06", "保障港口和航道用海"),
    "Z3": ("3", "琼北临港工业与城镇用海区", "1901", "06", "集约节约利用岸线，控制围填海规模"),
    "Z5": ("5", "东岭湾旅游休闲娱乐区", "2101", "06", "保护沙滩和海岸景观"),
    "Z1": ("1", "琼北西部农渔业区", "1802", "06", "保障渔业生产和养殖用海"),
    "Z8": ("8", "琼北北部保留区", "24", "06", "暂不开发，保留海域后备空间"),
}
REDLINE_REGIONS = {  # key: (name, ecological function)
    "H1": ("琼北西部火山群生物多样性维护", "生物多样性维护"),
    "H2": ("东岭山地水源涵养", "水源涵养"),
    "RES": ("琼北水库水源涵养", "水源涵养"),
    "COAST": ("西海岸防护林海岸生态稳定", "海岸生态稳定"),
    "MG": ("西江口红树林生物多样性维护", "生物多样性维护"),
    "MGSEA": ("西江口红树林海域", "生物多样性维护"),
    "CORAL": ("东岭湾珊瑚礁海域", "生物多样性维护"),
}

# theme -> overall (YDYHFLDM|None=use sub, GHFQDM), land_use (YTQLXDM, GZQLXDM),
# urban YDDM (None = use sub), forest (DI_LEI, BH_DJ, SEN_LIN_LB, 优势树种) or None,
# red line (GKLB, DLBM) or None, permanent farmland?
THEMES = {
    "URB": (None, "041", "030", "010", None, None, None, False),
    "IND": (None, "041", "030", "010", None, None, None, False),
    "PORT": ("1204", "041", "030", "010", "S", None, None, False),
    "RING": ("0103", "042", "020", "020", "E2", None, None, False),
    "TOWNLET": ("0701", "05", "040", "010", "H", None, None, False),
    "VIL": ("0703", "05", "040", "010", "H", None, None, False),
    "TOUR": (None, "043", "060", "010", "B1", None, None, False),
    "QUARRY": ("1002", "07", "050", "010", "M3", None, None, False),
    "FARM_P": (None, "03", "010", "030", "E2", None, None, True),
    "FARM_G": (None, "05", "020", "030", "E2", None, None, False),
    "GARDEN": (None, "05", "020", "030", "E2", None, None, False),
    "PLANT": ("0301", "05", "090", "030", "E2", ("0111", "4", "23", "桉树"), None, False),
    "HILL_SMALL": ("0301", "02", "090", "030", "E2", ("0111", "3", "12", "马占相思"), None, False),
    "HILL_CORE": ("0301", "01", "090", "040", "E2", ("0111", "1", "11", "热带季雨林"), ("1", "0301"), False),
    "HILL": ("0301", "01", "090", "030", "E2", ("0111", "2", "11", "热带季雨林"), ("2", "0301"), False),
    "RES_RING": ("0301", "01", "070", "030", "E2", ("0111", "2", "12", "水源涵养林"), ("2", "0301"), False),
    "COAST_RL": ("0301", "01", "090", "030", "E2", ("0111", "2", "11", "木麻黄"), ("2", "0301"), False),
    "COAST": ("0301", "02", "090", "030", "E2", ("0111", "3", "12", "木麻黄"), None, False),
    "MANGROVE": ("0507", "01", "070", "040", "E1", ("0113", "1", "11", "红树林"), ("1", "0303"), False),
    "RIVER": ("1701", "02", "070", "030", "E1", None, None, False),
    "RESERVOIR": ("1703", "02", "070", "040", "E1", None, None, False),
}
URB_OVERALL = {"R2": "0701", "A1": "0801", "A3": "0804", "A5": "0806", "B1": "0901", "B2": "0902",
               "G1": "1401", "S": "1208", "U": "1303", "M1": "1001", "M2": "1001", "W": "1101",
               "X9": "16"}
TOWN_NAMES = {"R2": "住宅", "A1": "行政中心", "A3": "学校", "A5": "医院", "B1": "商业", "B2": "商务",
              "G1": "公园", "S": "交通场站", "U": "公用设施", "M1": "工业", "M2": "工业", "W": "物流仓储"}

# Patches: one planted conflict each.  (id, intended rule hits, host predicate, target point,
# patch radius, overrides per layer ("theme" replaces the theme; None drops the layer), note)
PATCHES = [
    ("C01", {"two_plan_1", "conditional"}, "RING", (13600, 15700), 150,
     {"urban": {"YDDM": "R2"}}, "城规在弹性发展区内规划二类居住用地，土规为一般农地区（有条件建设区）"),
    ("C02", {"two_plan_1", "control_zone"}, "URBAN_AGRI", (15600, 15300), 150,
     {"urban": {"YDDM": "M1"}}, "城规规划一类工业用地，土规为一般农地区（限制建设区）"),
    ("C03", {"two_plan_2"}, "URBAN_AGRI", (9000, 15600), 150,
     {"land_use": {"YTQLXDM": "030", "GZQLXDM": "010"}}, "土规划为城镇建设用地区，城规为农林用地E2"),
    ("C04", {"two_plan_2"}, "URBAN_AGRI", (12000, 14600), 150,
     {"land_use": {"YTQLXDM": "040", "GZQLXDM": "010"}}, "土规划为村镇建设用地区，城规为农林用地E2"),
    ("C05", {"farmland", "control_zone"}, "FARM_P_RURAL", (4000, 9500), 150,
     {"overall": {"YDYHFLDM": "0703", "GHFQDM": "05"}}, "总规村庄建设用地（宅基地）压占永久基本农田"),
    ("C06", {"farmland", "control_zone"}, "FARM_P_RURAL", (9500, 9800), 160,
     {"overall": {"YDYHFLDM": "1001", "GHFQDM": "05"}}, "总规工业用地压占永久基本农田"),
    ("C07", {"farmland_use"}, "FARM_P", (2000, 13000), 150,
     {"overall": {"YDYHFLDM": "0301"}}, "总规将永久基本农田规划为乔木林地"),
    ("C08", {"farmland_use"}, "FARM_P", (13500, 10500), 150,
     {"overall": {"YDYHFLDM": "0203"}}, "总规将永久基本农田规划为橡胶园地"),
    ("C09", {"red_line_1", "forest_1", "control_zone"}, "HILL_CORE_H1", H1, 160,
     {"overall": {"YDYHFLDM": "0901"}}, "总规商业用地（温泉度假酒店）位于生态保护红线一类管控区、Ⅰ级保护林地"),
    ("C10", {"red_line_1", "forest_1", "control_zone"}, "MANGROVE", ESTUARY, 120,
     {"overall": {"YDYHFLDM": "1204", "GHFQDM": "05"}}, "渔港码头用地压占红树林（红线一类、Ⅰ级保护林地）"),
    ("C11", {"red_line_1", "land_sea"}, "SEA_Z6A", (7000, 20200), 180,
     {"overall": {"YDYHFLDM": "1001", "GHFQDM": "06"}}, "填海造地工业用地位于海洋保护区和红线一类区"),
    ("C12", {"red_line_2", "forest_2", "control_zone"}, "HILL_H1", (5900, 3600), 150,
     {"overall": {"YDYHFLDM": "0703", "GHFQDM": "05"}}, "村庄建设用地位于红线二类管控区、Ⅱ级保护林地"),
    ("C13", {"red_line_2", "forest_2", "control_zone"}, "RES_RING", (12700, 3800), 130,
     {"overall": {"YDYHFLDM": "1301"}}, "水厂（供水用地）位于水源涵养红线二类区、Ⅱ级保护林地"),
    ("C14", {"boundary_red_line"}, "COAST_RL", (8800, 18600), 130,
     {"overall": {"GHFQDM": "042"}}, "城镇弹性发展区划入海岸防护林生态保护红线"),
    ("C15", {"boundary_red_line"}, "COAST_RL", (7300, 18400), 130,
     {"overall": {"GHFQDM": "042"}}, "城镇弹性发展区划入海岸防护林生态保护红线"),
    ("C16", {"boundary_farmland"}, "FARM_P", (11800, 14500), 150,
     {"overall": {"GHFQDM": "042"}}, "城镇弹性发展区划入永久基本农田"),
    ("C17", {"boundary_farmland"}, "FARM_P", (15500, 14600), 150,
     {"overall": {"GHFQDM": "042"}}, "城镇弹性发展区划入永久基本农田"),
    ("C18", {"forest_3_4", "control_zone"}, "COAST", (19000, 19000), 140,
     {"overall": {"YDYHFLDM": "0901"}}, "商业用地（滨海酒店）占用Ⅲ级保护林地（沿海防护林）"),
    ("C19", {"forest_3_4", "control_zone"}, "PLANT", (8000, 5000), 150,
     {"overall": {"YDYHFLDM": "1001"}}, "工业用地占用Ⅳ级保护林地（桉树商品林）"),
    ("C20", {"forest_farmland"}, "AGRI_020_RURAL", (18500, 10500), 150,
     {"forest": {"DI_LEI": "0141", "BH_DJ": "4", "SEN_LIN_LB": "23", "YOU_SHI_SZ": "桉树"}},
     "林地规划将一般农地区划为未成林造林地"),
    ("C21", {"forest_farmland"}, "FARM_P", (6500, 9000), 150,
     {"forest": {"DI_LEI": "0171", "BH_DJ": "3", "SEN_LIN_LB": "12", "YOU_SHI_SZ": "宜林地"},
      "farmland": None}, "林地规划将基本农田保护区内地块划为宜林荒山荒地"),
    ("C22", {"control_zone"}, "GARDEN_RURAL", (19500, 5000), 150,
     {"overall": {"YDYHFLDM": "0703"}}, "总规村庄建设用地位于土规限制建设区"),
    ("C23", {"control_zone"}, "AGRI_020_RURAL", (2500, 6800), 150,
     {"overall": {"YDYHFLDM": "1208"}}, "总规交通场站用地位于土规限制建设区"),
    ("C24", {"conditional"}, "RING", (9600, 16200), 150,
     {"overall": {"YDYHFLDM": "0701"}}, "总规城镇住宅用地位于土规有条件建设区"),
    ("C25", {"conditional"}, "RING", (14700, 15400), 150,
     {"overall": {"YDYHFLDM": "0901"}}, "总规商业用地位于土规有条件建设区"),
    ("C26", {"land_sea"}, "SEA_Z6A", (4500, 20500), 200,
     {"overall": {"YDYHFLDM": "1802", "GHFQDM": "06"}}, "增养殖用海位于红树林海洋保护区"),
    ("C27", {"land_sea"}, "SEA_Z6B", (20500, 21000), 200,
     {"overall": {"YDYHFLDM": "2101", "GHFQDM": "06"}}, "风景旅游用海位于珊瑚礁海洋保护区"),
    ("C36", {"slope"}, "KNOLL0", KNOLLS[0], 0,
     {"theme": "QUARRY"}, "石场（采矿用地）位于坡度大于25°的山坡"),
    ("C37", {"slope"}, "KNOLL1", KNOLLS[1], 0,
     {"theme": "VIL"}, "村庄建设用地位于坡度大于25°的山坡"),
]

# Network lines: (layer, class, status, name, road code, design points, smooth, carve from,
# planted id).  Corridors of lines are carved out of the layers named in "carve from", as
# coordinated plans do; the four planted lines keep one conflict each.
LINES = [
    ("road", "高速公路", "现状", "G98环岛高速公路琼北段", "G98",
     [(-400, 9100), (4200, 8600), (8000, 8300), (12500, 8800), (17000, 8500), (21400, 8100)], True, "FR", None),
    ("road", "铁路", "现状", "海南环岛高速铁路琼北段", "HDTL",
     [(-400, 12200), (5200, 11700), (10300, 11500), (15500, 11900), (21400, 12500)], True, "FR", None),
    ("road", "一级公路", "现状", "S81琼北大道", "S81",
     [(11500, -400), (11200, 4500), (11300, 8800), (11500, 13000), (11700, 16200), (11900, 17600)], True, "FR", None),
    ("road", "二级公路", "现状", "X201岭北—西江公路", "X201",
     [(-400, 10300), (2000, 9900), (4000, 9500), (6500, 11000), (8500, 13000), (11500, 13800)], True, "FR", None),
    ("road", "二级公路", "现状", "X202东岭连接线", "X202",
     [(16500, 7000), (14000, 7600), (11300, 7900)], True, "FR", None),
    ("road", "城市主干路", "现状", "滨海大道", "",
     [(8800, 17200), (11000, 17500), (13500, 17300), (15200, 17500), (17200, 17400)], True, "FR", None),
    ("road", "城市主干路", "规划", "椰城路", "", [(12000, 15800), (12100, 18200)], False, "FR", None),
    ("road", "三级公路", "规划", "东岭—石岭旅游公路", "X315",
     [(16500, 7000), (16900, 5000), (17300, 3300), (17600, 1500), (17800, -400)], True, "F", "C32"),
    ("road", "三级公路", "规划", "西江—新村公路", "X316",
     [(8500, 13000), (6000, 14500), (4000, 16000)], True, "FR", None),
    ("road", "二级公路", "规划", "环岛旅游公路琼北段", "",
     [(-400, 18200), (3000, 18000), (5000, 17500), (6500, 17300), (8800, 17200)], True, "FR", None),
    ("fiber", "骨干", "现状", "海口—琼北骨干光缆", "", "OFFSET:G98", False, "FR", None),
    ("fiber", "城域", "规划", "城关镇城域环网", "",
     [(9500, 16800), (12000, 16500), (14800, 16900), (15500, 17800)], True, "FR", None),
    ("fiber", "接入", "现状", "岭北镇接入光缆", "", [(4000, 9500), (3000, 12500), (2500, 15000)], True, "FR", None),
    ("fiber", "海缆", "规划", "琼北—雷州海底光缆", "", [(13800, 18500), (14200, 22000), (14800, 26800)], True, "FR", None),
    ("fiber", "接入", "现状", "东岭镇接入光缆", "", [(16500, 7000), (19000, 6000)], True, "FR", None),
    ("power", "220kV", "现状", "220千伏琼北—城关线", "",
     [(5000, -400), (7500, 6000), (9800, 11000), (10800, 15600)], False, "FR", None),
    ("power", "110kV", "规划", "110千伏城关—东岭线", "",
     [(7200, 4800), (11300, 2500), (13500, 2750), (15300, 4500), (16500, 7000)], False, "F", "C33"),
    ("power", "110kV", "现状", "110千伏城关—临港线", "", [(10800, 15600), (13200, 16100), (15500, 16300)], False, "FR", None),
    ("power", "10kV", "现状", "10千伏岭北线", "", [(7500, 6000), (5600, 8000), (4000, 9500)], False, "FR", None),
    ("power", "35kV", "规划", "35千伏西江线", "", [(9800, 11000), (8500, 13000)], False, "FR", None),
    ("gas", "高压", "规划", "琼北港LNG外输高压管道", "",
     [(13200, 18100), (13700, 15000), (14800, 12500), (16200, 9800), (16500, 7100)], True, "R", "C34"),
    ("gas", "中压", "现状", "城关镇中压燃气主干管", "", [(10000, 17000), (12200, 16900), (14500, 16800)], True, "FR", None),
    ("gas", "海底管道", "现状", "琼北海底输气管道", "", [(16500, 18700), (17200, 22500), (18000, 26800)], True, "FR", None),
    ("water", "原水干渠", "规划", "琼北水库—县城原水干渠", "",
     [(13350, 3950), (12800, 6500), (12350, 10000), (11950, 13800), (11000, 15300)], True, "R", "C35"),
    ("water", "输水干管", "现状", "城关水厂输水干管", "", [(11000, 15300), (11500, 16400), (11900, 17300)], True, "FR", None),
    ("water", "排水干管", "现状", "城关污水处理厂排水干管", "", [(12500, 17000), (12650, 18000), (12800, 18900)], True, "FR", None),
    ("water", "配水管", "规划", "西区配水管", "", [(11000, 15300), (10000, 15800), (9000, 16500)], True, "FR", None),
]
# co-triggers that may or may not happen depending on where the hill's cones fall
MAYBE = {"C09": {"slope"}, "C12": {"slope"}, "C13": {"slope"}}
PLANTED_LINES = {"C32": {"network_red_line"}, "C33": {"network_red_line"},
                 "C34": {"network_farmland"}, "C35": {"network_farmland"}}
PLANTED_LINE_NOTES = {"C32": "规划旅游公路穿越东岭山地生态保护红线（一类、二类）",
                      "C33": "规划110千伏线路穿越水库水源涵养红线（二类）",
                      "C34": "规划高压燃气管道穿越永久基本农田",
                      "C35": "规划原水干渠穿越永久基本农田"}
INPLAN = {"C28": ("in_plan_overlap", "land_use", "土规两个图斑相互重叠（数字化错误）"),
          "C29": ("in_plan_overlap", "urban", "城规两个地块相互重叠（数字化错误）"),
          "C30": ("in_plan_gap", "land_use", "土规覆盖层中的空洞（漏绘图斑）"),
          "C31": ("in_plan_gap", "urban", "城规覆盖层中的空洞（漏绘地块）")}

RULE_ZH = {
    "two_plan_1": "两规差异1 城规建设/土规非建设", "two_plan_2": "两规差异2 土规建设/城规非建设",
    "farmland": "建设用地占永久基本农田", "farmland_use": "永久基本农田规划为林地/园地等",
    "red_line_1": "建设用地占生态保护红线一类区", "red_line_2": "建设用地占生态保护红线二类区",
    "boundary_red_line": "城镇开发边界与生态保护红线重叠", "boundary_farmland": "城镇开发边界与永久基本农田重叠",
    "network_red_line": "五网廊道穿越生态保护红线", "network_farmland": "五网廊道穿越永久基本农田",
    "forest_1": "建设用地占Ⅰ级保护林地", "forest_2": "建设用地占Ⅱ级保护林地",
    "forest_3_4": "建设用地占Ⅲ/Ⅳ级保护林地", "forest_farmland": "林耕冲突",
    "control_zone": "建设用地压占限制/禁止建设区", "conditional": "建设用地位于有条件建设区",
    "land_sea": "海洋保护区内的用海或建设", "in_plan_overlap": "同一规划图斑重叠",
    "in_plan_gap": "同一规划覆盖层空洞", "slope": "建设用地坡度大于25°",
}


# ----------------------------------------------------------------------------- specs

def load_specs():
    specs = {lid: yaml.safe_load((ROOT / "layers" / f"{lid}.yaml").read_text("utf-8"))
             for lid in LAYER_IDS}
    sandiao = yaml.safe_load((ROOT / "layers" / "crosswalks" / "sandiao.yaml").read_text("utf-8"))
    with open(ROOT / "multiplan" / "data" / "ydyh_classes.csv", encoding="utf-8") as f:
        ydyh = {r["code"]: r["name_zh"] for r in csv.DictReader(f)}
    return specs, sandiao, ydyh


class Names:
    """Code -> Chinese name lookups taken from the layer specs, and class semantics."""

    CONSTR = {f"{i:02d}" for i in range(7, 17)}
    SEA_USE = {"18", "19", "20", "21", "22"}

    def __init__(self, specs, sandiao, ydyh):
        self.specs, self.ydyh = specs, ydyh
        self.rows = {}
        for lid, spec in specs.items():
            cw = spec["crosswalk"]
            rows = sandiao["rows"] if cw == "sandiao" else ([] if cw == "ydyh" else cw["rows"])
            self.rows[lid] = {str(r["source"]): r for r in rows}
        self.zones = {lid: {k: v["zh"] for k, v in spec.get("zone_field", {}).get("values", {}).items()}
                      for lid, spec in specs.items()}
        self.widths = {lid: spec["corridor"]["widths_m"] for lid, spec in specs.items()
                       if "corridor" in spec}

    def cls(self, lid, code):
        if lid == "overall":
            return self.ydyh.get(code, "")
        r = self.rows[lid].get(code)
        return r.get("name", "") if r else ""

    def construction(self, lid, code):
        """Planned construction land: every target of the class is in 07-16."""
        if lid == "overall":
            return code[:2] in self.CONSTR
        r = self.rows[lid].get(code)
        if r is None:
            return False  # unknown code: reported, never classified
        t = r["target"] if isinstance(r["target"], list) else [r["target"]]
        return all(str(x)[:2] in self.CONSTR for x in t)


# ----------------------------------------------------------------------------- geometry helpers

def ell(x, y, e):
    cx, cy, rx, ry = e
    return math.hypot((x - cx) / rx, (y - cy) / ry)


def coast_y(x):
    x = np.asarray(x, dtype=float)
    return (19300 + 300 * np.sin(2 * np.pi * x / 7300 + 0.7) + 120 * np.sin(2 * np.pi * x / 2100 + 1.3)
            + 40 * np.sin(2 * np.pi * x / 610 + 0.2)
            - 900 * np.exp(-(((x - 12300) / 1400) ** 2)) - 350 * np.exp(-(((x - 6000) / 450) ** 2))
            + 700 * np.exp(-(((x - 17600) / 900) ** 2)))


def make_warp(rng):
    """A smooth bending of the plane (|grad| < 0.31 per axis, so it is one-to-one)."""
    comps = []
    for amp, wl in ((80.0, 5200.0), (30.0, 1700.0), (8.0, 520.0)):
        for axis in (0, 1):
            th, ph = rng.uniform(0, 2 * np.pi, 2)
            k = 2 * np.pi / wl
            comps.append((axis, amp, k * np.cos(th), k * np.sin(th), ph))

    def warp(xy):
        xy = np.asarray(xy, dtype=float)
        out = xy.copy()
        for axis, amp, kx, ky, ph in comps:
            out[:, axis] += amp * np.sin(kx * xy[:, 0] + ky * xy[:, 1] + ph)
        return out
    return warp


def seg_coords(coords, maxlen):
    """Densify a ring or line; points on an edge do not depend on its direction, so two
    polygons sharing an edge get identical vertices."""
    c = np.asarray(coords, dtype=float)[:, :2]
    out = [c[:1]]
    for p, q in zip(c[:-1], c[1:], strict=True):
        n = math.ceil(math.hypot(*(q - p)) / maxlen)
        if n > 1:
            rev = (q[0], q[1]) < (p[0], p[1])
            a, b = (q, p) if rev else (p, q)
            pts = a + (np.arange(1, n)[:, None] / n) * (b - a)
            out.append(pts[::-1] if rev else pts)
        out.append(q[None])
    return np.vstack(out)


def bend_polygon(poly, warp, maxlen=70.0):
    return Polygon(warp(seg_coords(poly.exterior.coords, maxlen)),
                   [warp(seg_coords(r.coords, maxlen)) for r in poly.interiors])


def polys(g):
    """Polygon parts of any geometry."""
    if g is None or g.is_empty:
        return []
    return [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and p.area > 0] if \
        g.geom_type in ("MultiPolygon", "GeometryCollection") else ([g] if g.geom_type == "Polygon" else [])


def inter(a, b):
    return shapely.intersection(a, b, grid_size=GRID)


def areal(g):
    """Only the polygonal part of an overlay result."""
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    ps = polys(g)
    return shapely.MultiPolygon(ps) if ps else Polygon()


def diff(a, b):
    return shapely.difference(a, b, grid_size=GRID)


def union(geoms):
    return shapely.union_all(list(geoms), grid_size=GRID)


def blob(c, r, rng, n=28, rough=0.16):
    """An irregular, roughly round polygon of mean radius r."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ph = rng.uniform(0, 2 * np.pi, 3)
    k = rng.uniform(0.3, 1.0, 3) * (0.6, 0.3, 0.15)
    rad = r * (1 + rough * (k[0] * np.sin(2 * a + ph[0]) + k[1] * np.sin(3 * a + ph[1]) + k[2] * np.sin(5 * a + ph[2]))
               + rng.uniform(-0.03, 0.03, n))
    return shapely.set_precision(Polygon(np.c_[c[0] + rad * np.cos(a), c[1] + rad * np.sin(a)]), GRID)


def sector(c, r0, r1, a0, a1, n=12):
    a = np.linspace(a0, a1, n)
    outer = np.c_[c[0] + r1 * np.cos(a), c[1] + r1 * np.sin(a)]
    inner = np.c_[c[0] + r0 * np.cos(a[::-1]), c[1] + r0 * np.sin(a[::-1])]
    return shapely.set_precision(Polygon(np.vstack([outer, inner])), GRID)


def chaikin(pts, n=2):
    p = np.asarray(pts, dtype=float)
    for _ in range(n):
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        p = np.vstack([p[:1], np.column_stack([q, r]).reshape(-1, 2), p[-1:]])
    return p


def label_point(g):
    """Centre of the largest inscribed circle (deterministic)."""
    return polylabel(g, tolerance=5.0)


def rep_point(g):
    c = g.centroid
    return c if g.contains(c) else g.point_on_surface()


# ----------------------------------------------------------------------------- the truth map

@dataclass
class Piece:
    id: int
    geom: object
    domain: str                       # land | sea
    theme: str = ""
    sub: str = ""
    parent: int | None = None
    patch: str | None = None
    over: dict = field(default_factory=dict)
    in_urban: bool = False
    town: str = ""
    zone: str = ""
    region: str = ""
    x: float = 0.0
    y: float = 0.0
    inside: int | None = None         # a village lies inside this piece


def poisson_seeds(rng, spacing, bounds, tries=70000):
    x0, y0, x1, y1 = bounds
    cand = rng.uniform([x0, y0], [x1, y1], size=(tries, 2))
    acc = np.empty((0, 2))
    for c in cand:
        r = spacing(c[0], c[1])
        if len(acc) == 0 or np.min(np.hypot(acc[:, 0] - c[0], acc[:, 1] - c[1])) >= r:
            acc = np.vstack([acc, c])
    return acc


def merge_small(pieces, min_area):
    """Merge pieces smaller than min_area(piece) into the neighbour sharing the longest edge."""
    skip = set()
    while True:
        small = [p for p in pieces if p.id not in skip and p.geom.area < min_area(p)]
        if not small:
            return pieces
        p = min(small, key=lambda q: (q.geom.area, q.id))
        tree = shapely.STRtree([q.geom for q in pieces])
        best, key = None, None
        for j in tree.query(p.geom, predicate="intersects"):
            q = pieces[j]
            if q is p or q.domain != p.domain:
                continue
            length = shapely.intersection(p.geom.boundary, q.geom.boundary, grid_size=GRID).length
            k = (q.theme == p.theme, length)
            if length > 0 and (key is None or k > key):
                best, key = q, k
        if best is None:
            skip.add(p.id)
            continue
        best.geom = union([best.geom, p.geom])
        pieces.remove(p)


def build_truth(rng):
    warp = make_warp(rng)
    t = np.linspace(0, 1, 121)

    def noise(amps):
        ph = rng.uniform(0, 2 * np.pi, len(amps))
        return sum(a * np.sin(2 * np.pi * f * t + p) for (a, f), p in zip(amps, ph, strict=True)) * np.sin(np.pi * t)

    ns = noise([(380, 1.5), (150, 4.3), (60, 11.7)])
    ne = noise([(320, 1.2), (140, 3.7), (50, 9.1)])
    nw = noise([(350, 1.4), (130, 4.1), (55, 10.3)])
    cx = np.arange(0, W + 1, 40.0)
    coast = np.c_[cx, coast_y(cx)]
    south = np.c_[t * W, ns]
    east = np.c_[W + ne, t * coast_y(W)]
    west = np.c_[nw, (1 - t) * coast_y(0.0)]
    land_d = Polygon(np.vstack([south, east[1:], coast[::-1][1:], west[1:]]))
    sea_d = Polygon(np.vstack([coast, [(W + 900, SEA_TOP), (-700, SEA_TOP)]]))
    assert land_d.is_valid and sea_d.is_valid
    land = shapely.set_precision(bend_polygon(land_d, warp), GRID)
    sea = shapely.set_precision(bend_polygon(sea_d, warp), GRID)
    coastline = shapely.line_merge(shapely.intersection(land.boundary, sea.boundary, grid_size=GRID))

    def spacing(x, y):
        if y > float(coast_y(x)) + 150:
            return 1900.0
        et, ei = ell(x, y, TOWN), ell(x, y, IND)
        if et < 1.0:
            return 240.0
        if ei < 1.1:
            return 330.0
        if et < 1.45 or ei < 1.4:
            return 430.0
        return 820.0

    frame = (-2500.0, -2500.0, W + 2500.0, SEA_TOP + 2500.0)
    seeds = poisson_seeds(rng, spacing, frame)
    fbox = box(*frame)
    cells = shapely.get_parts(shapely.voronoi_polygons(MultiPoint(seeds), extend_to=fbox))
    pieces = []
    for c in cells:
        if not fbox.contains(c):
            c = shapely.intersection(c, fbox)
        c = shapely.set_precision(bend_polygon(c, warp), GRID)
        for dom, area in (("land", land), ("sea", sea)):
            if c.intersects(area):
                for g in polys(inter(c, area)):
                    pieces.append(Piece(len(pieces), g, dom))
    merge_small(pieces, lambda p: 15000.0 if p.domain == "land" else 250000.0)

    # rivers and the reservoir, cut out of the land pieces
    rpts = chaikin([(8500, -600), (9000, 3000), (8600, 5600), (7500, 10000), (8100, 14000),
                    (6800, 17000), (6000, 18600), (5900, 19600)], 3)
    river_line = LineString(warp(seg_coords(rpts, 60.0)))
    up = shapely.set_precision(river_line, GRID)
    river = union([inter(up, box(-3000, -3000, W + 3000, 10000)).buffer(30),
                   inter(up, box(-3000, 10000, W + 3000, SEA_TOP)).buffer(55)])
    a = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    rr = 1 + 0.12 * np.sin(3 * a + 0.4) + 0.07 * np.sin(5 * a + 1.9)
    ex, ey = 750 * rr * np.cos(a), 420 * rr * np.sin(a)
    th = math.radians(20)
    res_d = Polygon(np.c_[RESERVOIR[0] + ex * math.cos(th) - ey * math.sin(th),
                          RESERVOIR[1] + ex * math.sin(th) + ey * math.cos(th)])
    reservoir = shapely.set_precision(bend_polygon(res_d, warp, 50.0), GRID)
    river = diff(inter(river, land), reservoir)
    water = union([river, reservoir])
    nxt = max(p.id for p in pieces) + 1
    out = []
    for p in pieces:
        if p.domain == "land" and p.geom.intersects(water):
            for name, wg in (("RESERVOIR", reservoir), ("RIVER", river)):
                for g in polys(inter(p.geom, wg)):
                    out.append(Piece(nxt, g, "land", theme=name))
                    nxt += 1
            for g in polys(diff(p.geom, water)):
                out.append(Piece(nxt, g, "land"))
                nxt += 1
        else:
            out.append(p)
    pieces = out
    merge_small(pieces, lambda p: (15000.0 if not p.theme else 3000.0) if p.domain == "land" else 250000.0)
    for i, p in enumerate(pieces):
        p.id = i
        rp = rep_point(p.geom)
        p.x, p.y = rp.x, rp.y
    return dict(pieces=pieces, land=land, sea=sea, coast=coastline, river=river,
                river_line=river_line, reservoir=reservoir, warp=warp)


def sea_zone(x, y):
    if math.hypot(x - 6000, y - 19300) < 3200:
        return "Z6A"
    if math.hypot(x - 20500, y - 21000) < 1700:
        return "Z6B"
    if y >= 24200:
        return "Z8"
    if 10500 <= x < 14300:
        return "Z2"
    if 14300 <= x < 17600:
        return "Z3"
    if x >= 17600:
        return "Z5"
    return "Z1"


def assign_themes(world, rng):
    pieces, coast, reservoir = world["pieces"], world["coast"], world["reservoir"]
    villages = []
    for p in list(pieces):
        u = rng.random(4)
        x, y = p.x, p.y
        p.town = min(TOWNS, key=lambda k: math.hypot(x - TOWNS[k][0], y - TOWNS[k][1]))
        if p.domain == "sea":
            p.theme, p.zone = "SEA", sea_zone(x, y)
            p.region = {"Z6A": "MGSEA", "Z6B": "CORAL"}.get(p.zone, "")
            continue
        if p.theme:
            continue
        dc = coast.distance(Point(x, y))
        et, ei = ell(x, y, TOWN), ell(x, y, IND)
        d1, d2, d3 = (math.hypot(x - h[0], y - h[1]) for h in (H1, H2, H3))
        dk = min(math.hypot(x - k[0], y - k[1]) for k in KNOLLS)
        dres = reservoir.distance(Point(x, y))
        dt = min(math.hypot(x - c[0], y - c[1]) for n, c in TOWNS.items() if n != "城关镇")
        if math.hypot(x - ESTUARY[0], y - ESTUARY[1]) < 1000 and dc < 800:
            p.theme, p.region = "MANGROVE", "MG"
        elif math.hypot(x - PORT[0], y - PORT[1]) < 650:
            p.theme = "PORT"
        elif et < 1.0:
            p.theme = "URB"
            if et < 0.35:
                p.sub = "A1" if u[1] < 0.25 else "B1" if u[1] < 0.55 else "B2" if u[1] < 0.7 else "R2"
            elif dc < 350:
                p.sub = "G1" if u[1] < 0.5 else "B1"
            elif x > 13900:
                p.sub = "M1" if u[1] < 0.4 else "W" if u[1] < 0.6 else "R2"
            else:
                p.sub = ("R2" if u[1] < 0.62 else "A3" if u[1] < 0.7 else "A5" if u[1] < 0.75 else
                         "G1" if u[1] < 0.85 else "U" if u[1] < 0.9 else "S" if u[1] < 0.95 else "B1")
        elif ei < 1.0:
            p.theme, p.sub = "IND", ("M2" if u[1] < 0.45 else "M1" if u[1] < 0.75 else "W")
        elif x > 18300 and dc < 1100:
            p.theme, p.sub = "TOUR", ("0901" if u[1] < 0.5 else "1401")
        elif dc < 650:
            if 6500 < x < 11000:
                p.theme, p.region = "COAST_RL", "COAST"
            else:
                p.theme = "COAST"
        elif et < 1.4 or ei < 1.35:
            p.theme = "RING"
        elif d1 < H1_R:
            p.theme, p.region = ("HILL_CORE" if d1 < H1_CORE else "HILL"), "H1"
        elif d2 < H2_R:
            p.theme, p.region = ("HILL_CORE" if d2 < H2_CORE else "HILL"), "H2"
        elif dres < 450:
            p.theme, p.region = "RES_RING", "RES"
        elif d3 < H3_R:
            p.theme = "HILL_SMALL"
        elif dk < 1000:
            p.theme, p.sub = "GARDEN", "0201"
        elif dt < 550:
            p.theme = "TOWNLET"
        elif u[0] < 0.06 and y < 9000:
            p.theme = "PLANT"
        else:
            if u[0] < 0.2 and dk > 1300 and d1 > H1_R + 400 and d2 > H2_R + 400:
                villages.append(p)
            v = (0.55 * math.sin(x / 2300 + 1.1) * math.cos(y / 2700 - 0.4)
                 + 0.35 * math.sin((x + y) / 4100 + 2.0) + 0.5 * (u[2] - 0.5))
            v -= 0.5 * min(max((6000 - y) / 4000, 0), 1)
            if et < 1.8 or ei < 1.7:
                v -= 0.45
            if v > -0.05:
                p.theme, p.sub = "FARM_P", ("0101" if u[3] < 0.45 else "0103")
            elif v > -0.45:
                p.theme, p.sub = "FARM_G", ("0103" if u[3] < 0.8 else "0101")
            else:
                p.theme, p.sub = "GARDEN", ("0203" if y < 8000 else "0201")
    # villages: small irregular blobs inside farmland and garden pieces
    nxt = max(p.id for p in pieces) + 1
    for p in villages:
        if p.geom.geom_type != "Polygon":
            continue
        c = label_point(p.geom)
        r = min(rng.uniform(110, 210), p.geom.boundary.distance(c) / 1.35)
        if r < 80:
            continue
        v = blob((c.x, c.y), r, rng, n=22, rough=0.3)
        if not p.geom.contains(v):
            continue
        p.geom = diff(p.geom, v)
        pieces.append(Piece(nxt, v, "land", theme="VIL", town=p.town, inside=p.id, x=c.x, y=c.y))
        nxt += 1
    # two parcels carry a code that no crosswalk knows
    r2 = [p for p in pieces if p.theme == "URB" and p.sub == "R2"]
    for i in rng.choice(len(r2), 2, replace=False):
        r2[int(i)].sub = "X9"
    # the urban plan's area: around the county seat and the industrial park, without holes
    land_p = [p for p in pieces if p.domain == "land"]
    for p in land_p:
        p.in_urban = ell(p.x, p.y, TOWN) < 1.75 or ell(p.x, p.y, IND) < 1.6
    area = union(p.geom for p in land_p if p.in_urban)
    parts = sorted(polys(area), key=lambda g: -g.area)
    filled = Polygon(parts[0].exterior)
    for p in land_p:
        p.in_urban = filled.contains(Point(p.x, p.y))
    by_id = {p.id: p for p in land_p}
    for p in land_p:
        if p.inside is not None:
            p.in_urban = by_id[p.inside].in_urban


# ----------------------------------------------------------------------------- networks

def build_lines(world, names):
    warp, county = world["warp"], union([world["land"], world["sea"]])
    feats, by_code = [], {}
    for layer, cls, zt, name, code, pts, smooth, carve, planted in LINES:
        if isinstance(pts, str):
            base = by_code[pts.split(":")[1]]
            g = shapely.offset_curve(base, 45.0)
        else:
            p = chaikin(pts, 3) if smooth else np.asarray(pts, dtype=float)
            g = LineString(warp(seg_coords(p, 100.0)))
        g = shapely.line_merge(inter(shapely.set_precision(g, GRID), county))
        if code:
            by_code[code] = g
        feats.append(dict(layer=layer, cls=cls, zt=zt, name=name, code=code, geom=g,
                          carve=carve, planted=planted, width=float(names.widths[layer][cls])))
    return feats


# ----------------------------------------------------------------------------- patches

def host_ok(kind, p):
    t = p.theme
    if kind in THEMES or kind in ("SEA",):
        return t == kind
    return {
        "URBAN_AGRI": p.in_urban and t in ("FARM_G", "GARDEN"),
        "FARM_P_RURAL": t == "FARM_P" and not p.in_urban,
        "HILL_CORE_H1": t == "HILL_CORE" and p.region == "H1",
        "HILL_H1": t == "HILL" and p.region == "H1",
        "AGRI_020_RURAL": t in ("FARM_G", "GARDEN") and not p.in_urban and p.sub != "0201",
        "GARDEN_RURAL": t == "GARDEN" and not p.in_urban and p.sub == "0203",
        "SEA_Z6A": t == "SEA" and p.zone == "Z6A",
        "SEA_Z6B": t == "SEA" and p.zone == "Z6B",
    }[kind]


def place_patches(world, lines, rng):
    pieces = world["pieces"]
    avoid = [ln["geom"].buffer(ln["width"] + 60) for ln in lines]
    used, markers, knolls = set(), [], []
    nxt = max(p.id for p in pieces) + 1
    for pid, types, kind, target, r, over, note in PATCHES:
        if kind.startswith("KNOLL"):
            k = KNOLLS[int(kind[-1])]
            cands = [p for p in pieces if p.theme == "GARDEN" and p.sub == "0201" and p.id not in used
                     and math.hypot(p.x - k[0], p.y - k[1]) < 800]
            best = None
            for p in cands:
                c = label_point(p.geom)
                d = p.geom.boundary.distance(c)
                if best is None or d > best[2]:
                    best = (p, c, d)
            host, c, d = best
            r0, r1 = 95.0, min(215.0, d - 60)
            a0 = rng.uniform(0, 2 * np.pi)
            geom = sector((c.x, c.y), r0, r1, a0, a0 + math.radians(75))
            knolls.append((c.x, c.y))
        else:
            cands = sorted((p for p in pieces if p.id not in used and host_ok(kind, p)),
                           key=lambda p: (math.hypot(p.x - target[0], p.y - target[1]), p.id))
            host = geom = None
            r = r * rng.uniform(0.75, 1.2)
            for rr in (r, r * 0.8, r * 0.65):
                for p in cands[:40]:
                    if p.geom.geom_type != "Polygon":
                        continue
                    c = label_point(p.geom)
                    if p.geom.boundary.distance(c) < rr * 1.3 + 25:
                        continue
                    g = blob((c.x, c.y), rr, rng)
                    if any(g.intersects(a) for a in avoid) or not p.geom.contains(g):
                        continue
                    host, geom = p, g
                    break
                if host is not None:
                    break
            if host is None:
                raise RuntimeError(f"no host for patch {pid} ({kind})")
        used.add(host.id)
        host.geom = diff(host.geom, geom)
        theme = over.get("theme", host.theme)
        pp = Piece(nxt, geom, host.domain, theme=theme, sub=host.sub if theme == host.theme else "",
                   parent=host.id, patch=pid, over={k: v for k, v in over.items() if k != "theme"},
                   in_urban=host.in_urban, town=host.town, zone=host.zone, region=host.region,
                   x=geom.centroid.x, y=geom.centroid.y)
        nxt += 1
        pieces.append(pp)
        avoid.append(geom.buffer(150))
        markers.append(dict(id=pid, types=types, geom=geom, note=note, host=host.id))
    world["knolls"] = knolls
    world["avoid"] = avoid
    return markers


# ----------------------------------------------------------------------------- layers

def attrs(layer, p, names):
    """The attributes a plan gives a piece (codes only), or None if the piece is not in it."""
    if p.theme == "SEA":
        lx, zname, ycode, gh, _ = SEA_ZONES[p.zone]
        a = {"overall": {"YDYHFLDM": ycode, "GHFQDM": gh},
             "ocean": {"zone": p.zone},
             "eco_redline": ({"GKLB": "1" if p.zone == "Z6A" else "2", "DLBM": "1105", "region": p.region}
                             if p.region else None)}.get(layer)
    else:
        ov, gh, ytq, gzq, yddm, fo, rl, fp = THEMES[p.theme]
        if ov is None:
            ov = URB_OVERALL[p.sub] if p.theme in ("URB", "IND") else p.sub
        if yddm is None:
            yddm = p.sub
        a = {"overall": {"YDYHFLDM": ov, "GHFQDM": gh},
             "land_use": {"YTQLXDM": ytq, "GZQLXDM": gzq},
             "urban": {"YDDM": yddm} if p.in_urban else None,
             "farmland": {"DLBM": p.sub} if fp else None,
             "forest": dict(zip(("DI_LEI", "BH_DJ", "SEN_LIN_LB", "YOU_SHI_SZ"), fo, strict=True)) if fo else None,
             "eco_redline": {"GKLB": rl[0], "DLBM": rl[1], "region": p.region} if rl else None,
             }.get(layer)
    if layer in p.over:
        o = p.over[layer]
        if o is None:
            return None
        a = {**(a or {}), **o}
    return a


def group_pieces(pieces, layer, names, by_parent=True):
    groups = {}
    for p in pieces:
        a = attrs(layer, p, names)
        if a is None:
            continue
        key = ((p.parent if p.parent is not None else p.id) if by_parent else None, tuple(sorted(a.items())))
        groups.setdefault(key, []).append(p)
    out = []
    for (_, items), ps in groups.items():
        g = union(q.geom for q in ps) if len(ps) > 1 else ps[0].geom
        for part in polys(g):
            out.append(dict(geom=part, a=dict(items), town=ps[0].town, in_urban=ps[0].in_urban, domain=ps[0].domain,
                            patch=next((q.patch for q in ps if q.patch and attrs(layer, q, names) == dict(items)
                                        and q.over.get(layer)), None)))
    return out


def sort_feats(feats):
    return sorted(feats, key=lambda f: (-round(f["geom"].centroid.y / 600), f["geom"].centroid.x))


def subdivide(poly, spacing, rng, min_area):
    n = int(poly.area / spacing ** 2)
    if n < 2:
        return [poly]
    x0, y0, x1, y1 = poly.bounds
    pts = rng.uniform([x0, y0], [x1, y1], size=(n * 4, 2))
    pts = pts[shapely.contains_xy(poly, pts[:, 0], pts[:, 1])][:n]
    if len(pts) < 2:
        return [poly]
    cells = shapely.get_parts(shapely.voronoi_polygons(MultiPoint(pts), extend_to=poly.envelope.buffer(10)))
    parts = [Piece(i, g, "x") for i, g in enumerate(g2 for c in cells for g2 in polys(inter(c, poly)))]
    merge_small(parts, lambda p: min_area)
    return [p.geom for p in parts]


def build_layers(world, lines, names, rng):
    pieces = world["pieces"]
    L = {}
    feats = {}
    for layer in ("overall", "land_use", "urban"):
        feats[layer] = sort_feats(group_pieces(pieces, layer, names))
    # carve network corridors out of farmland and the red line (coordinated lines)
    carve = {k: union(ln["geom"].buffer(ln["width"] + 5) for ln in lines if k in ln["carve"]) for k in "FR"}
    fl = []
    for f in group_pieces(pieces, "farmland", names):
        for g in polys(diff(f["geom"], carve["F"])):
            for s in subdivide(g, 430.0, rng, 2500.0):
                if s.area >= 400:
                    fl.append({**f, "geom": s})
    feats["farmland"] = sort_feats(fl)
    fo = []
    for f in group_pieces(pieces, "forest", names):
        for s in subdivide(f["geom"], 650.0, rng, 5000.0):
            fo.append({**f, "geom": s})
    feats["forest"] = sort_feats(fo)
    rl = []
    for f in group_pieces(pieces, "eco_redline", names, by_parent=False):
        rl.append(f)
    merged = {}
    for f in rl:
        merged.setdefault(tuple(sorted(f["a"].items())), []).append(f["geom"])
    feats["eco_redline"] = sort_feats([dict(geom=g, a=dict(k), town="", patch=None, in_urban=False)
                                       for k, gs in merged.items() for g in polys(diff(union(gs), carve["R"]))
                                       if g.area > 1000])
    oc = {}
    for p in pieces:
        if p.domain == "sea":
            oc.setdefault(p.zone, []).append(p.geom)
    feats["ocean"] = sort_feats([dict(geom=g, a={"zone": z}, town="", patch=None, in_urban=False)
                                 for z, gs in oc.items() for g in polys(union(gs))])
    markers = plant_inplan(feats, world, rng)
    for layer, fs in feats.items():
        L[layer] = fs
    for ln in NETWORKS:
        L[ln] = [dict(geom=x["geom"], line=x) for x in lines if x["layer"] == ln]
    return L, markers


def plant_inplan(feats, world, rng):
    """Digitising errors inside coverage plans: two overlaps and two gaps."""
    avoid = union(world["avoid"])
    markers = []

    taken = []

    def free(f):
        return not f["geom"].intersects(avoid) and not f.get("patch") and not any(f is t for t in taken)

    def overlap(layer, pick, r, pid):
        fs = feats[layer]
        tree = shapely.STRtree([f["geom"] for f in fs])
        for i, f in enumerate(fs):
            if not (pick(f) and free(f)):
                continue
            for j in tree.query(f["geom"], predicate="touches"):
                g = fs[j]
                if j == i or not (pick(g) and free(g)):
                    continue
                shared = shapely.line_merge(shapely.intersection(f["geom"].boundary, g["geom"].boundary,
                                                                 grid_size=GRID))
                if shared.length < 4 * r or shared.geom_type != "LineString":
                    continue
                c = shapely.line_interpolate_point(shared, 0.5, normalized=True)
                b = blob((c.x, c.y), r, rng)
                if b.intersects(avoid) or not union([f["geom"], g["geom"]]).contains(b):
                    continue
                f["geom"] = polys(union([f["geom"], inter(b, g["geom"])]))[0]
                taken.extend([f, g])
                markers.append(dict(id=pid, types={"in_plan_overlap"}, geom=inter(b, g["geom"]),
                                    note=INPLAN[pid][2], host=None, layer=layer))
                return
        raise RuntimeError(f"could not plant {pid}")

    def gap(layer, pick, r, pid):
        for f in feats[layer]:
            if not (pick(f) and free(f)):
                continue
            c = label_point(f["geom"])
            if f["geom"].boundary.distance(c) < 1.4 * r + 30:
                continue
            b = blob((c.x, c.y), r, rng)
            if b.intersects(avoid):
                continue
            f["geom"] = diff(f["geom"], b)
            markers.append(dict(id=pid, types={"in_plan_gap"}, geom=b, note=INPLAN[pid][2], host=None,
                                layer=layer))
            return
        raise RuntimeError(f"could not plant {pid}")

    overlap("land_use", lambda f: f["a"]["YTQLXDM"] in ("010", "020") and not f["in_urban"], 170, "C28")
    overlap("urban", lambda f: f["a"]["YDDM"] in ("R2", "B1", "A3", "B2"), 75, "C29")
    gap("land_use", lambda f: f["a"]["YTQLXDM"] == "020" and not f["in_urban"], 130, "C30")
    gap("urban", lambda f: f["a"]["YDDM"] == "E2", 120, "C31")
    return markers


# ----------------------------------------------------------------------------- DEM

def build_dem(world, rng):
    land = world["land"]
    x0, y0, x1, y1 = land.bounds
    x0, y0 = math.floor((x0 - 600) / DEM_CELL) * DEM_CELL, math.floor((y0 - 600) / DEM_CELL) * DEM_CELL
    x1, y1 = math.ceil((x1 + 600) / DEM_CELL) * DEM_CELL, math.ceil((y1 + 900) / DEM_CELL) * DEM_CELL
    nx, ny = int(round((x1 - x0) / DEM_CELL)), int(round((y1 - y0) / DEM_CELL))
    tr = from_origin(x0, y1, DEM_CELL, DEM_CELL)
    xs = x0 + (np.arange(nx) + 0.5) * DEM_CELL
    ys = y1 - (np.arange(ny) + 0.5) * DEM_CELL
    X, Y = np.meshgrid(xs, ys)
    cy = coast_y(X)
    t = np.clip((cy - Y) / 19000.0, 0, 1)
    ph = rng.uniform(0, 2 * np.pi, 4)
    z = (1.5 + 58 * t ** 0.85 + 3.5 * np.sin(X / 2900 + ph[0]) * np.cos(Y / 2300 + ph[1])
         + 1.5 * np.sin((X - Y) / 900 + ph[2]) + 0.8 * np.sin((X + 2 * Y) / 500 + ph[3]))
    # volcanic hill groups: a broad massif carrying steep cinder cones (slopes > 25°)
    cones = []
    peaks = [(H1[0], H1[1], 60.0, 1100.0), (H2[0], H2[1], 90.0, 800.0), (H3[0], H3[1], 60.0, 350.0)]
    for (hx, hy), n, rad in ((H1, 6, 1300), (H2, 3, 650)):
        placed = 0
        while placed < n:
            a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0, rad)
            px, py = hx + d * math.cos(a), hy + d * math.sin(a)
            if any(math.hypot(px - q[0], py - q[1]) < 550 for q in cones):
                continue
            s = rng.uniform(140, 200)
            cones.append((px, py, s * rng.uniform(0.85, 1.1), s))
            placed += 1
    for kx, ky in world["knolls"]:
        cones.append((kx, ky, 150.0, 150.0))
    for px, py, h, s in peaks + cones:
        z += h * np.exp(-((X - px) ** 2 + (Y - py) ** 2) / (2 * s * s))
    # craters on the two highest cones of the western group
    for px, py, h, s in sorted(cones[:6], key=lambda q: -q[2])[:2]:
        z -= 0.3 * h * np.exp(-((X - px) ** 2 + (Y - py) ** 2) / (2 * (0.3 * s) ** 2))
    shape = (ny, nx)
    land_m = rasterio.features.geometry_mask([land], shape, tr, invert=True)
    sea_m = rasterio.features.geometry_mask([world["sea"]], shape, tr, invert=True) | ((Y > cy) & ~land_m)
    z = np.where(sea_m, -1.0 - 0.0042 * np.clip(Y - cy, 0, None), z)
    res_m = rasterio.features.geometry_mask([world["reservoir"]], shape, tr, invert=True)
    z[res_m] = float(np.percentile(z[res_m], 20)) - 3.0
    riv_m = rasterio.features.geometry_mask([world["river"]], shape, tr, invert=True)
    z[riv_m & ~res_m] -= 2.5
    z = np.round(z, 1).astype("float32")
    return dict(z=z, transform=tr, x0=x0, y1=y1, steep=steep_union(z, tr))


def steep_union(z, tr):
    """Cells steeper than SLOPE_LIMIT as polygons (central differences, cell size DEM_CELL)."""
    gy, gx = np.gradient(z.astype(float), DEM_CELL)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    return union(shapely.geometry.shape(g) for g, v in rasterio.features.shapes(
        (slope > SLOPE_LIMIT).astype("uint8"), mask=slope > SLOPE_LIMIT, transform=tr) if v == 1)


# ----------------------------------------------------------------------------- attribute tables

class Ids:
    def __init__(self):
        self.n = {}

    def __call__(self, key, fmt):
        self.n[key] = self.n.get(key, 0) + 1
        return fmt.format(self.n[key])


def to_frames(L, names, world, geod_tr):
    """GeoDataFrames in local metres with the real attribute tables (ids assigned here)."""
    geod = Geod(ellps="GRS80")

    def ell_area(g):
        g4490 = shapely.transform(g, geod_tr)
        return round(abs(geod.geometry_area_perimeter(g4490)[0]), 2)

    out = {}
    rows = []
    for i, f in enumerate(L["overall"], 1):
        a = f["a"]
        rows.append(dict(BSM=f"{XZQDM}0100{i:05d}", YSDM="2090010100", XZQDM=XZQDM, XZQMC=XZQMC,
                         ZLDWMC=f["town"] if f["domain"] == "land" else "",
                         YDYHFLDM=a["YDYHFLDM"], YDYHFLMC=names.cls("overall", a["YDYHFLDM"]),
                         GHFQDM=a["GHFQDM"], GHFQMC=names.zones["overall"][a["GHFQDM"]],
                         TBMJ=ell_area(f["geom"]), BZ="2023年局部修改" if f.get("patch") else "",
                         geometry=f["geom"]))
    out["overall"] = rows
    rows = []
    for i, f in enumerate(L["land_use"], 1):
        a = f["a"]
        rows.append(dict(BSM=f"{XZQDM}0200{i:05d}", XZQDM=XZQDM, XZQMC=XZQMC, ZLDWMC=f["town"],
                         YTQLXDM=a["YTQLXDM"], YTQMC=names.cls("land_use", a["YTQLXDM"]),
                         GZQLXDM=a["GZQLXDM"], GZQMC=names.zones["land_use"][a["GZQLXDM"]],
                         TBMJ=ell_area(f["geom"]), BZ="", geometry=f["geom"]))
    out["land_use"] = rows
    rows = []
    for i, f in enumerate(L["urban"], 1):
        code = f["a"]["YDDM"]
        rows.append(dict(BSM=f"{XZQDM}0300{i:05d}", XZQDM=XZQDM, DKBH=f"CG-{i:04d}", YDDM=code,
                         YDMC=names.cls("urban", code) or "待定用地",
                         TBMJ=ell_area(f["geom"]), BZ="用地性质待定" if code == "X9" else "", geometry=f["geom"]))
    out["urban"] = rows
    rows = []
    for i, f in enumerate(L["farmland"], 1):
        code = f["a"]["DLBM"]
        rows.append(dict(JBNTTBBH=f"{XZQDM}{i:06d}", BSM=f"{XZQDM}0400{i:05d}", XZQDM=XZQDM,
                         ZLDWMC=f["town"], DLBM=code, DLMC=names.cls("farmland", code),
                         ZLDJ=int(4 + (i * 7919) % 5), TBMJ=ell_area(f["geom"]), BZ="", geometry=f["geom"]))
    out["farmland"] = rows
    rows = []
    for i, f in enumerate(L["forest"], 1):
        a = f["a"]
        rows.append(dict(XBH=f"{(i - 1) // 20 + 1:03d}-{(i - 1) % 20 + 1:02d}", XZQDM=XZQDM, XIANG=f["town"],
                         DI_LEI=a["DI_LEI"], DLMC=names.cls("forest", a["DI_LEI"]),
                         SEN_LIN_LB=a["SEN_LIN_LB"], BH_DJ=a["BH_DJ"],
                         BHDJMC=names.zones["forest"][a["BH_DJ"]], YOU_SHI_SZ=a["YOU_SHI_SZ"],
                         XBMJ=round(ell_area(f["geom"]) / 10000, 4), BZ="规划新增林地" if f.get("patch") else "",
                         geometry=f["geom"]))
    out["forest"] = rows
    rows = []
    ids = Ids()
    for f in L["ocean"]:
        lx, zname, _, _, glyq = SEA_ZONES[f["a"]["zone"]]
        rows.append(dict(GNQDM=ids(lx, lx + "-{:02d}"), XZQDM=XZQDM, GNQMC=zname, GNQLX=lx,
                         GNQLXMC=names.cls("ocean", lx), MJ=round(ell_area(f["geom"]) / 10000, 4),
                         GLYQ=glyq, BZ="", geometry=f["geom"]))
    out["ocean"] = rows
    rows = []
    for i, f in enumerate(L["eco_redline"], 1):
        a = f["a"]
        rname, func = REDLINE_REGIONS[a["region"]]
        rows.append(dict(HXBH=f"{XZQDM}HX{i:03d}", XZQDM=XZQDM,
                         HXMC=f"{rname}生态保护红线（{'一' if a['GKLB'] == '1' else '二'}类管控区）",
                         GKLB=a["GKLB"], GKLBMC=names.zones["eco_redline"][a["GKLB"]],
                         DLBM=a["DLBM"], DLMC=names.cls("eco_redline", a["DLBM"]), STGN=func,
                         MJ=ell_area(f["geom"]), BZ="", geometry=f["geom"]))
    out["eco_redline"] = rows
    cls_field = {"road": "DJ", "fiber": "DJ", "power": "DYDJ", "gas": "YLDJ", "water": "DJ"}
    for k, ln in enumerate(NETWORKS):
        rows = []
        for i, f in enumerate(L[ln], 1):
            x = f["line"]
            r = dict(BSM=f"{XZQDM}{k + 5:02d}00{i:05d}")
            if ln == "road":
                r["LXBM"] = x["code"]
            r.update({"MC": x["name"], cls_field[ln]: x["cls"], "ZT": x["zt"], "CD": round(x["geom"].length, 1),
                      "XZQDM": XZQDM, "BZ": "近期实施" if x["zt"] == "规划" else "", "geometry": x["geom"]})
            rows.append(r)
        out[ln] = rows
    frames = {k: gpd.GeoDataFrame(v, geometry="geometry", crs=None) for k, v in out.items()}
    for k in frames:
        frames[k]["_fid"] = frames[k][ID_FIELD[k]]
    return frames


ID_FIELD = {"overall": "BSM", "land_use": "BSM", "urban": "BSM", "farmland": "JBNTTBBH", "forest": "XBH",
            "ocean": "GNQDM", "eco_redline": "HXBH", "road": "BSM", "fiber": "BSM", "power": "BSM",
            "gas": "BSM", "water": "BSM"}
CLASS_FIELD = {"overall": "YDYHFLDM", "land_use": "YTQLXDM", "urban": "YDDM", "farmland": "DLBM",
               "forest": "DI_LEI", "ocean": "GNQLX", "eco_redline": "DLBM", "road": "DJ", "fiber": "DJ",
               "power": "DYDJ", "gas": "YLDJ", "water": "DJ"}


# ----------------------------------------------------------------------------- rule engine

def find_hits(F, names, steep):
    """Every rule hit (DOMAIN.md section 4) between the layers, as dict rows."""
    def sel(layer, pred):
        df = F[layer]
        return df[[bool(pred(r)) for r in df.itertuples()]]

    def constr(layer):
        return sel(layer, lambda r: names.construction(layer, getattr(r, CLASS_FIELD[layer])))

    C = {k: constr(k) for k in ("overall", "urban", "land_use")}
    CA = [("overall", C["overall"]), ("urban", C["urban"]), ("land_use", C["land_use"])]
    CP = CA[:2]
    fl = F["farmland"]
    rla = F["eco_redline"]
    fo = F["forest"]
    lu = F["land_use"]
    oc = F["ocean"]
    bnd = sel("overall", lambda r: r.GHFQDM in ("04", "041", "042", "043"))
    rules = [
        ("two_plan_1", [("urban", C["urban"])],
         ("land_use", sel("land_use", lambda r: not names.construction("land_use", r.YTQLXDM)))),
        ("two_plan_2", [("land_use", C["land_use"])], ("urban", sel("urban", lambda r: r.YDDM in ("E1", "E2", "E9")))),
        ("farmland", CA, ("farmland", fl)),
        ("farmland_use", [("overall", sel("overall", lambda r: r.YDYHFLDM[:2] in ("02", "03", "04", "06")))],
         ("farmland", fl)),
        ("red_line_1", CA, ("eco_redline", rla[rla.GKLB == "1"])),
        ("red_line_2", CA, ("eco_redline", rla[rla.GKLB == "2"])),
        ("boundary_red_line", [("overall", bnd)], ("eco_redline", rla)),
        ("boundary_farmland", [("overall", bnd)], ("farmland", fl)),
        ("forest_1", CA, ("forest", fo[fo.BH_DJ == "1"])),
        ("forest_2", CA, ("forest", fo[fo.BH_DJ == "2"])),
        ("forest_3_4", CA, ("forest", fo[fo.BH_DJ.isin(["3", "4"])])),
        ("forest_farmland", [("land_use", lu[lu.YTQLXDM.isin(["010", "020"])])], ("forest", fo)),
        ("control_zone", CP, ("land_use", lu[lu.GZQLXDM.isin(["030", "040"])])),
        ("conditional", CP, ("land_use", lu[lu.GZQLXDM == "020"])),
        ("land_sea", [("overall", sel("overall", lambda r: names.construction("overall", r.YDYHFLDM)
                                      or r.YDYHFLDM[:2] in Names.SEA_USE))], ("ocean", oc[oc.GNQLX == "6"])),
    ]
    hits = []

    def pairs(a, la, b, lb, rule, line=False):
        if len(a) == 0 or len(b) == 0:
            return
        tree = shapely.STRtree(b.geometry.values)
        ga = a["_corr"].values if line else a.geometry.values
        ia, ib = tree.query(ga, predicate="intersects")
        for i, j in zip(ia, ib, strict=True):
            g = areal(inter(ga[i], b.geometry.values[j]))
            if g.area < MIN_HIT:
                continue
            h = dict(rule=rule, la=la, fa=a["_fid"].values[i], lb=lb, fb=b["_fid"].values[j],
                     area=g.area, geom=g)
            if line:
                h["length"] = a.geometry.values[i].intersection(b.geometry.values[j]).length
            hits.append(h)

    for rule, As, (lb, B) in rules:
        for la, A in As:
            pairs(A, la, B, lb, rule)
    for ln in NETWORKS:
        df = F[ln]
        pairs(df, ln, fl, "farmland", "network_farmland", line=True)
        pairs(df, ln, rla, "eco_redline", "network_red_line", line=True)
    for k in COVERAGE:
        df = F[k]
        tree = shapely.STRtree(df.geometry.values)
        ia, ib = tree.query(df.geometry.values, predicate="intersects")
        for i, j in zip(ia, ib, strict=True):
            if i < j:
                g = areal(inter(df.geometry.values[i], df.geometry.values[j]))
                if g.area >= MIN_HIT:
                    hits.append(dict(rule="in_plan_overlap", la=k, fa=df["_fid"].values[i], lb=k,
                                     fb=df["_fid"].values[j], area=g.area, geom=g))
        u = union(df.geometry.values)
        for part in polys(u):
            for ring in part.interiors:
                hole = Polygon(ring)
                if hole.area < MIN_HIT:
                    continue
                near = df.iloc[tree.query(hole.buffer(0.01), predicate="intersects")]
                fa = near["_fid"].values[0] if len(near) == 1 else \
                    near.iloc[int(np.argmax([g.boundary.intersection(hole.boundary).length for g in near.geometry]))]["_fid"]
                hits.append(dict(rule="in_plan_gap", la=k, fa=fa, lb=k, fb="", area=hole.area, geom=hole))
    for k in ("overall", "urban", "land_use"):
        for fid, geom in zip(C[k]["_fid"], C[k].geometry, strict=True):
            g = areal(inter(geom, steep))
            if g.area >= MIN_HIT:
                hits.append(dict(rule="slope", la=k, fa=fid, lb="dem", fb=f"slope>{SLOPE_LIMIT:g}°",
                                 area=g.area, geom=g))
    return hits


def attribute_hits(hits, markers):
    """Tie every hit to the planted instance that explains it; return (rows, problems)."""
    problems, rows = [], []
    tree = shapely.STRtree([m["match"] for m in markers])
    for h in hits:
        best, ba = None, 0.0
        for j in tree.query(h["geom"], predicate="intersects"):
            m = markers[j]
            a = inter(h["geom"], m["match"]).area
            if a > ba:
                best, ba = m, a
        if best is None or ba < 0.5 * h["area"]:
            problems.append(f"unplanned hit {h['rule']} {h['la']}:{h['fa']} x {h['lb']}:{h['fb']} "
                            f"{h['area']:.0f} m² (planted share {ba:.0f})")
            continue
        if h["rule"] not in best["types"] | MAYBE.get(best["id"], set()):
            problems.append(f"planted {best['id']} also triggers {h['rule']} ({h['area']:.0f} m²)")
            continue
        h["pid"] = best["id"]
        h["note"] = best["note"]
        rows.append(h)
    for m in markers:
        got = {h["rule"] for h in rows if h.get("pid") == m["id"]}
        missing = m["types"] - got
        if missing:
            problems.append(f"planted {m['id']} does not trigger {sorted(missing)}")
    return rows, problems


# ----------------------------------------------------------------------------- writers

def fix_dbf(path):
    with open(path, "r+b") as f:
        f.seek(1)
        f.write(DBF_DATE)
        f.seek(29)
        f.write(b"\x00")  # no language driver id, like many Chinese exports


def check_gbk(df):
    for c in df.columns:
        if c != "geometry" and pd.api.types.is_string_dtype(df[c]):
            for v in df[c]:
                if isinstance(v, str):
                    v.encode("gbk")


def write_zip_shp(df, zpath, inner, keep_prj=True):
    check_gbk(df)
    with tempfile.TemporaryDirectory() as td:
        shp = Path(td) / "x.shp"
        pyogrio.write_dataframe(df, shp, encoding="GBK")
        cpg = shp.with_suffix(".cpg")
        if cpg.exists():
            cpg.unlink()
        fix_dbf(shp.with_suffix(".dbf"))
        exts = [".shp", ".shx", ".dbf"] + ([".prj"] if keep_prj else [])
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
            if "/" in inner:
                zi = zipfile.ZipInfo(inner.rsplit("/", 1)[0] + "/", date_time=ZIP_DATE)
                zi.external_attr = (0o40755 << 16) | 0x10
                z.writestr(zi, b"")
            for e in exts:
                zi = zipfile.ZipInfo(inner + e, date_time=ZIP_DATE)
                zi.compress_type = zipfile.ZIP_DEFLATED
                zi.external_attr = 0o644 << 16
                z.writestr(zi, (Path(td) / ("x" + e)).read_bytes())


LAYER_FILES = {  # layer: (file, source_layer, inner shapefile path, CRS, note)
    "overall": ("plans/overall.zip", None, "国土空间总体规划用地用海", 4490,
                "zipped shapefile with a Chinese base name; GBK .dbf, no .cpg, LDID 0; EPSG:4490 with .prj; also covers the county's sea"),
    "land_use": ("plans/land_use.zip", None, "成果/土地利用规划", 4525,
                 "shapefile inside a sub-folder of the zip (成果/土地利用规划.shp); GBK .dbf, no .cpg; zone-prefixed EPSG:4525 (eastings 37xxxxxx) with .prj; planted overlap and gap"),
    "urban": ("plans/urban.zip", None, "urban", 4508,
              "GBK .dbf, no .cpg; EPSG:4508 (CGCS2000 GK CM 111E, 6-digit eastings) with .prj; covers only the urban planning area; unknown class code X9 on 2 parcels; planted overlap and gap"),
    "farmland": ("plans/farmland.zip", None, "farmland", 4490, "GBK .dbf, no .cpg; EPSG:4490 with .prj"),
    "forest": ("plans/forest.zip", None, "forest", 4546,
               "no .prj: EPSG:4546 coordinates (CGCS2000 3-degree GK CM 111E, 6-digit eastings, no zone prefix) must be recognised from the numbers; GBK .dbf, no .cpg"),
    "ocean": ("plans/ocean.gpkg", "海洋功能区划", None, 4490,
              "GeoPackage, EPSG:4490, layer name in Chinese (海洋功能区划); UTF-8"),
    "eco_redline": ("plans/eco_redline.geojson", None, None, 4490,
                    "GeoJSON, UTF-8, lon/lat, crs member urn:ogc:def:crs:EPSG::4490; land and sea parts"),
    "road": ("plans/road.zip", None, "road", 4490, "GBK .dbf, no .cpg; EPSG:4490 with .prj; lines"),
    "fiber": ("plans/fiber.zip", None, "fiber", 4490, "GBK .dbf, no .cpg; EPSG:4490 with .prj; lines incl. a submarine cable"),
    "power": ("plans/power.zip", None, "power", 4490, "GBK .dbf, no .cpg; EPSG:4490 with .prj; lines"),
    "gas": ("plans/gas.zip", None, "gas", 4490, "GBK .dbf, no .cpg; EPSG:4490 with .prj; lines incl. a submarine pipeline"),
    "water": ("plans/water.zip", None, "water", 4490, "GBK .dbf, no .cpg; EPSG:4490 with .prj; lines"),
}


def absolute(df, off):
    g = shapely.transform(df.geometry.values, lambda c: c + off)
    keep = [c for c in df.columns if c != "geometry" and not c.startswith("_")]
    return gpd.GeoDataFrame(df[keep], geometry=g, crs=f"EPSG:{METRIC}")


def write_layers(F, out, off):
    for lid in LAYER_IDS:
        fname, src, inner, crs, _ = LAYER_FILES[lid]
        df = absolute(F[lid], off).to_crs(crs)
        path = out / fname
        if fname.endswith(".zip"):
            write_zip_shp(df, path, inner, keep_prj=(lid != "forest"))
        elif fname.endswith(".gpkg"):
            pyogrio.write_dataframe(df, path, layer=src, driver="GPKG")
        else:
            pyogrio.write_dataframe(df, path, driver="GeoJSON",
                                    layer_options={"COORDINATE_PRECISION": 9, "WRITE_BBOX": "NO"})


def write_dem(dem, path, off):
    z = dem["z"]
    tr = from_origin(dem["x0"] + off[0], dem["y1"] + off[1], DEM_CELL, DEM_CELL)
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1,
                       dtype="float32", crs=f"EPSG:{METRIC}", transform=tr, nodata=-9999.0,
                       compress="deflate", predictor=3, zlevel=9, tiled=True, blockxsize=256,
                       blockysize=256) as ds:
        ds.write(z, 1)
        ds.set_band_description(1, "elevation (m, 1985国家高程基准)")
        ds.update_tags(1, units="metre")


# ----------------------------------------------------------------------------- approvals and sites

def site_polygon(c, r, rng, n=8):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(-0.25, 0.25, n)
    rad = r * rng.uniform(0.8, 1.15, n)
    return shapely.set_precision(Polygon(np.c_[c[0] + rad * np.cos(a), c[1] + rad * np.sin(a)]), 0.01)


def build_sites(F, world, markers, rng):
    mk = {m["id"]: m["geom"] for m in markers}

    def in_feature(layer, pred, r):
        df = F[layer]
        avoid = union(world["avoid"])
        for g, ok in zip(df.geometry, [pred(x) for x in df.itertuples()], strict=True):
            if not ok or g.intersects(avoid):
                continue
            c = label_point(g)
            if g.boundary.distance(c) > 1.5 * r:
                return site_polygon((c.x, c.y), r, rng)
        raise RuntimeError("no site")

    def in_marker(pid, r):
        g = mk[pid]
        c = label_point(g)
        return site_polygon((c.x, c.y), min(r, 0.6 * g.boundary.distance(c)), rng)

    return [
        ("2024-469099-70-03-000118", "城关镇滨海花园住宅小区项目", "海南琼北滨海置业有限公司", "建设工程规划许可",
         "approved", "2024-03-12", "王海涛", in_feature("urban", lambda x: x.YDDM == "R2", 55),
         "位于城镇集中建设区二类居住用地，符合规划"),
        ("2023-469099-30-03-000087", "琼北临港产业园新型建材生产线项目", "海南琼北建材科技有限公司", "建设用地规划许可",
         "approved", "2023-11-02", "陈晓燕", in_feature("urban", lambda x: x.YDDM == "M2", 90),
         "产业园区工业用地，符合规划"),
        ("2024-469099-61-01-000203", "石岭火山森林温泉度假酒店项目", "海南石岭旅游开发有限公司", "选址意见书",
         "rejected", "2024-01-18", "林志强", in_marker("C09", 80), "选址位于生态保护红线一类管控区，不予通过"),
        ("2024-469099-59-01-000156", "岭北镇农产品冷链物流中心项目", "琼北县岭北农业发展有限公司", "用地预审",
         "under_review", "2024-05-06", "符春花", in_marker("C06", 90), "拟用地涉及永久基本农田，需论证"),
        ("2024-469099-70-01-000131", "城关镇东部安置区项目", "琼北县城市投资建设有限公司", "用地预审",
         "under_review", "2024-04-22", "吴清", in_marker("C24", 90), "位于有条件建设区"),
        ("2024-469099-10-03-000177", "东岭石场扩建项目", "琼北县东岭建筑材料有限公司", "选址意见书",
         "submitted", "2024-06-03", "王小梅", in_marker("C36", 60), "山坡地块，需做地质灾害评估"),
        ("2023-469099-61-03-000064", "东岭湾旅游度假区游客服务中心", "海南东岭湾旅游发展有限公司", "建设工程规划许可",
         "approved", "2023-08-15", "黄文杰", in_feature("overall", lambda x: x.GHFQDM == "043", 70),
         "旅游度假区商业服务设施，符合规划"),
        ("2024-469099-70-01-000190", "龙塘村村民安置点项目", "琼北县岭北镇人民政府", "用地预审",
         "withdrawn", "2024-02-27", "李明", in_marker("C12", 80), "涉及生态保护红线二类管控区，申请人撤回"),
    ]


def write_approvals(sites, out, off, to4490, to4525):
    with open(out / "approvals.csv", "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(["项目代码", "项目名称", "申请单位", "审批阶段", "状态", "申请日期", "经办人", "用地范围", "备注"])
        for code, name, unit, stage, st, date, who, g, note in sites:
            g4490 = shapely.transform(g, lambda c: np.column_stack(to4490(c[:, 0] + off[0], c[:, 1] + off[1])))
            w.writerow([code, name, unit, stage, st, date, who, shapely.to_wkt(g4490, rounding_precision=7), note])
    sd = out / "sites"
    sd.mkdir(exist_ok=True)
    code, name, unit, *_, g, note = sites[2]
    g4490 = shapely.transform(g, lambda c: np.column_stack(to4490(c[:, 0] + off[0], c[:, 1] + off[1])))
    fc = {"type": "FeatureCollection", "name": "site_a",
          "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4490"}},
          "features": [{"type": "Feature", "properties": {"项目代码": code, "项目名称": name, "申请单位": unit},
                        "geometry": json.loads(shapely.to_geojson(shapely.set_precision(g4490, 1e-7)))}]}
    (sd / "site_a.geojson").write_text(json.dumps(fc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    g = sites[3][7]
    xy = np.asarray(g.exterior.coords)
    e, n = to4525(xy[:, 0] + off[0], xy[:, 1] + off[1])
    lines = ["点号,X,Y"]
    for i in range(len(xy)):
        k = i % (len(xy) - 1) + 1
        lines.append(f"J{k},{n[i]:.3f},{e[i]:.3f}")
    (sd / "site_jzd.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- check (read back)

def read_back(out, manifest, names):
    F = {}
    for lid in LAYER_IDS:
        ent = manifest["layers"][lid]
        path = out / ent["file"]
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                znames = z.namelist()
            shp = next(n for n in znames if n.endswith(".shp"))
            assert not any(n.endswith(".cpg") for n in znames), f"{lid}: .cpg present"
            assert any(n.endswith(".prj") for n in znames) == (lid != "forest"), f"{lid}: .prj"
            vsi = f"/vsizip/{path}/{shp}"
            raw = pyogrio.read_dataframe(vsi)
            df = pyogrio.read_dataframe(vsi, encoding="GBK")
            txt = [c for c in df.columns if c != "geometry" and pd.api.types.is_string_dtype(df[c])]
            assert any(any("\u4e00" <= ch <= "\u9fff" for ch in str(v)) for c in txt for v in df[c]), lid
            assert not raw[txt].equals(df[txt]), f"{lid}: GBK text should look wrong without encoding"
            if df.crs is None:
                df = df.set_crs(METRIC)  # what coordinate-based detection must conclude
        else:
            df = pyogrio.read_dataframe(path, layer=ent["source_layer"])
        df = df.to_crs(4490)
        x0, y0, x1, y1 = df.total_bounds
        assert 110.1 < x0 < x1 < 110.5 and 19.6 < y0 < y1 < 20.1, f"{lid}: bounds {df.total_bounds}"
        df = df.to_crs(METRIC)
        df["_fid"] = df[ID_FIELD[lid]]
        F[lid] = df
    return F


def check(out, rows, names):
    manifest = yaml.safe_load((out / "manifest.yaml").read_text("utf-8"))
    F = read_back(out, manifest, names)
    with rasterio.open(out / manifest["dem"]) as ds:
        z = ds.read(1)
        steep = steep_union(z, ds.transform)
    for ln in NETWORKS:
        w = names.widths[ln]
        F[ln]["_corr"] = [g.buffer(w[c] / 2) for g, c in zip(F[ln].geometry, F[ln][CLASS_FIELD[ln]], strict=True)]
    hits = find_hits(F, names, steep)
    got = {(h["rule"], h["la"], str(h["fa"]), h["lb"], str(h["fb"])): h["area"] for h in hits}
    bad = []
    for r in rows:
        k = (r["conflict_type"], r["layer_a"], r["feature_a"], r["layer_b"], r["feature_b"])
        a = got.pop(k, None)
        if a is None or abs(a - r["approx_area_m2"]) > max(2.0, 0.005 * r["approx_area_m2"]):
            bad.append(f"{r['id']} {k}: file {a} vs recorded {r['approx_area_m2']}")
    for k, v in got.items():
        bad.append(f"unrecorded hit after read-back {k} {v:.1f} m²")
    # coverage extents: overall = land + sea, ocean = sea, land_use + its gaps = land
    areas = {k: F[k].geometry.area.sum() for k in COVERAGE}
    gaps = {k: sum(r["approx_area_m2"] for r in rows if r["conflict_type"] == "in_plan_gap" and r["layer_a"] == k)
            for k in COVERAGE}
    ovl = {k: sum(r["approx_area_m2"] for r in rows if r["conflict_type"] == "in_plan_overlap" and r["layer_a"] == k)
           for k in COVERAGE}
    land = union(F["land_use"].geometry.values)
    sea = union(F["ocean"].geometry.values)
    tot = union(F["overall"].geometry.values)
    if abs(tot.area - areas["overall"]) > 5 or abs(sea.area - areas["ocean"]) > 5:
        bad.append("overall/ocean coverage has overlaps")
    if abs(tot.area - (sea.area + Polygon(polys(land)[0].exterior).area)) > 50:
        bad.append(f"overall != land_use + ocean extent: {tot.area:.0f} vs {sea.area + land.area + gaps['land_use']:.0f}")
    if abs(land.area - (areas["land_use"] - ovl["land_use"])) > 5:
        bad.append("land_use overlaps beyond the planted one")
    # approvals: BOM, WKT in lon/lat, the 界址点 table and the GeoJSON site agree with their records
    raw = (out / manifest["approvals"]).read_bytes()
    if not raw.startswith(b"\xef\xbb\xbf"):
        bad.append("approvals.csv has no BOM")
    recs = pd.read_csv(out / manifest["approvals"], encoding="utf-8-sig", dtype=str)
    sites = gpd.GeoSeries(shapely.from_wkt(recs["用地范围"]), crs=4490)
    if not sites.total_bounds[0] > 110 or not sites.is_valid.all():
        bad.append("approval sites not lon/lat or invalid")
    jzd = pd.read_csv(out / "sites" / "site_jzd.txt", dtype={"点号": str})
    ring = gpd.GeoSeries([Polygon(np.c_[jzd["Y"], jzd["X"]])], crs=4525).to_crs(4490)
    if abs(ring.to_crs(METRIC).area[0] - sites.iloc[[3]].to_crs(METRIC).area.iloc[0]) > 1.0:
        bad.append("site_jzd.txt does not match approval record 4")
    sa = pyogrio.read_dataframe(out / "sites" / "site_a.geojson")
    if sa["项目代码"][0] != recs["项目代码"][2] or sa.to_crs(METRIC).area[0] - sites.iloc[[2]].to_crs(METRIC).area.iloc[0] > 1:
        bad.append("site_a.geojson does not match approval record 3")
    return bad, F


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "sample_data")
    ap.add_argument("--no-check", action="store_true", help="skip reading the files back")
    args = ap.parse_args(argv)
    t0 = time.time()
    out = args.out.resolve()
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": GPKG_DATE})
    specs, sandiao, ydyh = load_specs()
    names = Names(specs, sandiao, ydyh)
    rng = np.random.default_rng(SEED)

    to4546 = Transformer.from_crs(4490, METRIC, always_xy=True)
    e0, n0 = to4546.transform(LON0, LAT0)
    off = np.array([round(e0, -1), round(n0, -1)])
    t4490 = Transformer.from_crs(METRIC, 4490, always_xy=True)
    t4525 = Transformer.from_crs(METRIC, 4525, always_xy=True)

    def geod_tr(c):
        return np.column_stack(t4490.transform(c[:, 0] + off[0], c[:, 1] + off[1]))

    world = build_truth(rng)
    world["off"] = off
    assign_themes(world, rng)
    lines = build_lines(world, names)
    markers = place_patches(world, lines, rng)
    for ln in lines:
        if ln["planted"]:
            markers.append(dict(id=ln["planted"], types=PLANTED_LINES[ln["planted"]],
                                geom=ln["geom"].buffer(ln["width"] * 1.5), note=PLANTED_LINE_NOTES[ln["planted"]],
                                host=None))
    assert shapely.coverage_is_valid([p.geom for p in world["pieces"] if p.domain == "land"]), "land pieces"
    L, inplan = build_layers(world, lines, names, rng)
    markers += inplan
    dem = build_dem(world, rng)
    F = to_frames(L, names, world, geod_tr)
    for ln in NETWORKS:
        F[ln]["_corr"] = [g.buffer(names.widths[ln][c] / 2)
                          for g, c in zip(F[ln].geometry, F[ln][CLASS_FIELD[ln]], strict=True)]
    for m in markers:  # steep cells are 30 m squares: let them stick out of the patch a little
        m["match"] = m["geom"].buffer(40) if "slope" in m["types"] else m["geom"]
    hits = find_hits(F, names, dem["steep"])
    good, problems = attribute_hits(hits, markers)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit("design error: the layers do not agree except where planted")

    # ---- write
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("plans", "sites"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir()
    write_layers(F, out, off)
    write_dem(dem, out / "dem.tif", off)
    order = {m["id"]: i for i, m in enumerate(sorted(markers, key=lambda m: m["id"]))}
    good.sort(key=lambda h: (order[h["pid"]], h["rule"], h["la"], str(h["fa"]), h["lb"], str(h["fb"])))
    rows, count = [], {}
    for h in good:
        count[h["pid"]] = count.get(h["pid"], 0) + 1
        note = h["note"]
        if "length" in h:
            note += (f"；线路在图斑内长度约{h['length']:.0f}米" if h["length"] >= 1 else "；线路廊道擦及图斑边缘")
        if h["area"] < 400:
            note += "（小于400平方米上图面积，容差可抑制）"
        rows.append(dict(id=f"{h['pid']}-{count[h['pid']]}", conflict_type=h["rule"], layer_a=h["la"],
                         feature_a=str(h["fa"]), layer_b=h["lb"], feature_b=str(h["fb"]),
                         approx_area_m2=round(h["area"], 1), note=note))
    with open(out / "planted_conflicts.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    sites = build_sites(F, world, markers, rng)
    write_approvals(sites, out, off, t4490.transform, t4525.transform)
    manifest = {"layers": {lid: {"file": LAYER_FILES[lid][0], "source_layer": LAYER_FILES[lid][1],
                                 "note": LAYER_FILES[lid][4]} for lid in LAYER_IDS},
                "dem": "dem.tif", "approvals": "approvals.csv", "planted": "planted_conflicts.csv"}
    (out / "manifest.yaml").write_text(
        "# 琼北县 (469099) demo data; generated by scripts/make_sample_data.py, do not edit by hand\n"
        + yaml.safe_dump(manifest, allow_unicode=True, sort_keys=False, width=200), encoding="utf-8")
    write_readme(out, F, rows, world, dem, sites)

    print(f"琼北县 sample data -> {out}")
    for lid in LAYER_IDS:
        print(f"  {lid:12s} {len(F[lid]):5d} features  {LAYER_FILES[lid][0]}")
    print(f"  planted conflict rows: {len(rows)} from {len({r['id'].split('-')[0] for r in rows})} instances")
    if not args.no_check:
        bad, _ = check(out, rows, names)
        if bad:
            print("\n".join(bad), file=sys.stderr)
            raise SystemExit("check failed")
        print("  check: files read back, GBK decoded, every recorded conflict re-measured: OK")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"  total size {total / 1e6:.2f} MB, {time.time() - t0:.1f} s")


# ----------------------------------------------------------------------------- README

def write_readme(out, F, rows, world, dem, sites):
    land_km2 = world["land"].area / 1e6
    sea_km2 = world["sea"].area / 1e6

    def size(p):
        n = (out / p).stat().st_size
        return f"{n / 1024:.0f} KB" if n >= 10240 else f"{n:,} B"

    tr = Transformer.from_crs(METRIC, 4490, always_xy=True)
    off = world["off"]
    lon0, lat0 = tr.transform(*(np.array(world["land"].bounds[:2]) + off))
    lon1, lat1 = tr.transform(*(np.array(world["sea"].bounds[2:]) + off))
    cb = world["coast"].bounds
    _, c0 = tr.transform(cb[0] + off[0], cb[1] + off[1])
    _, c1 = tr.transform(cb[2] + off[0], cb[3] + off[1])

    files = "\n".join(
        f"| `{LAYER_FILES[lid][0]}` | `{lid}` | {len(F[lid])} | {size(LAYER_FILES[lid][0])} | {LAYER_FILES[lid][4]} |"
        for lid in LAYER_IDS)
    table = "\n".join(
        f"| {r['id']} | `{r['conflict_type']}` | {r['layer_a']} `{r['feature_a']}` | {r['layer_b']} `{r['feature_b']}` "
        f"| {r['approx_area_m2']:,.0f} | {r['note']} |" for r in rows)
    per_type = {}
    for r in rows:
        per_type.setdefault(r["conflict_type"], set()).add(r["id"].split("-")[0])
    types = "\n".join(f"| `{k}` | {RULE_ZH[k]} | {len(v)} | {', '.join(sorted(v))} |"
                      for k, v in sorted(per_type.items()))
    appr = "\n".join(f"| {s[0]} | {s[1]} | {s[3]} | {s[4]} | {s[8]} |" for s in sites)
    zmin, zmax = float(dem["z"][dem["z"] > -100].min()), float(dem["z"].max())
    text = f"""# 琼北县 sample data (fictional)

Generated by `scripts/make_sample_data.py`; do not edit by hand. Regenerate with

    .venv/bin/python scripts/make_sample_data.py            # writes sample_data/ and checks it
    .venv/bin/python scripts/make_sample_data.py --out DIR  # somewhere else

The run is deterministic (fixed seed {SEED}, fixed dates inside the zips and `.dbf` headers), takes about
15 seconds, and aborts if the layers disagree anywhere except at the planted conflicts.

## The county

琼北县 (XZQDM `{XZQDM}`, all features carry it) is an invented county on the real north coast of Hainan,
between about {lon0:.2f}° and {lon1:.2f}° E and {lat0:.2f}° and {lat1:.2f}° N: {land_km2:.0f} km² of land (about 21 km by
20 km) and {sea_km2:.0f} km² of sea north of an invented coastline at about {c0:.2f}-{c1:.2f}° N. Four towns: 城关镇 (the
county seat on a harbour bay, with the 临港产业园 industrial park east of it and a tourist coast 东岭湾 further
east), 岭北镇, 西江镇 and 东岭镇.
The 西江 river crosses the county from south to north and reaches the sea in an estuary with mangroves;
the 琼北水库 reservoir lies in the south between two forested volcanic hill groups (西部火山群 and 东岭).
The plain in between is farmland, rubber plantations and orchards with villages.

All plans were derived from one "truth" map, so they agree with each other (the farmland layer lies in
land-use zone 010 and overall class 0101/0103, the forest layer in 林地 classes, construction zones coincide,
coordinated five-network corridors are cut out of farmland and the red line) - except for the planted
conflicts listed below. Coverage layers (overall, land_use, urban, ocean) tile their area exactly except for
the planted overlaps and gaps.

## Files

| file | layer | features | size | what is awkward about it |
|---|---|---|---|---|
{files}
| `dem.tif` | DEM | {dem['z'].shape[1]}x{dem['z'].shape[0]} cells | {size('dem.tif')} | GeoTIFF, EPSG:4546, {DEM_CELL:g} m cells, float32 metres ({zmin:.0f} to {zmax:.0f} m; the sea has negative depths), deflate; volcanic hills steeper than 25° |
| `approvals.csv` | approvals | {len(sites)} | {size('approvals.csv')} | UTF-8 **with BOM**; site polygons as WKT in EPSG:4490, lon lat order |
| `sites/site_a.geojson` | one site | 1 | {size('sites/site_a.geojson')} | GeoJSON of the site of {sites[2][0]} (touches the red line) |
| `sites/site_jzd.txt` | one site | 1 | {size('sites/site_jzd.txt')} | 界址点坐标 table of the site of {sites[3][0]}: `点号,X,Y` in EPSG:4525 with zone prefix, X = northing, Y = easting (surveyors' order); the first point is repeated at the end to close the ring |
| `planted_conflicts.csv` | answers | {len(rows)} | {size('planted_conflicts.csv')} | UTF-8; every conflict the rules below find in the data |
| `manifest.yaml` | index | | | `layers:` (file, source_layer, note per layer id), `dem`, `approvals`, `planted` |

Shapefile details: every `.dbf` is GBK-encoded, has no `.cpg` and language driver id 0, so GDAL decodes it
as Latin-1 unless told `encoding="GBK"`. Most zips open directly (`pyogrio.read_dataframe("plans/road.zip")`);
`plans/overall.zip` holds `国土空间总体规划用地用海.shp` (a Chinese base name, UTF-8 flagged zip entry), and
`plans/land_use.zip` holds its shapefile in a sub-folder, `成果/土地利用规划.shp`, which GDAL does *not* find
when given only the zip: list the zip and open `/vsizip/…/land_use.zip/成果/土地利用规划.shp`.
`forest.zip` has no `.prj`: its 6-digit eastings around 416000-438000 and northings around 2.18-2.21 million
are EPSG:4546 (EPSG:4508 gives the same numbers; EPSG:4545 would put the data in the Gulf of Tonkin).
`land_use` in EPSG:4525 has eastings 37416000-37438000 (zone 37 prefix).

Field names: id fields are those first in each spec's `id_field` (BSM, JBNTTBBH, XBH, GNQDM, HXBH); class
fields YDYHFLDM / YTQLXDM / YDDM / DLBM / DI_LEI / GNQLX / DLBM / DJ / DYDJ / YLDJ; zone fields GHFQDM,
GZQLXDM, BH_DJ, GKLB; network status ZT (现状/规划) and name MC. Descriptive fields: names of the codes
(…MC), TBMJ (ellipsoidal area on GRS80/CGCS2000, m²), XBMJ and MJ (ha for forest and ocean), ZLDWMC / XIANG
(town), BZ (备注), CD (line length, m), LXBM (road number). Two urban parcels carry the class code `X9`,
which no crosswalk knows (it must be reported as unknown). Red-line parts at sea carry DLBM `1105`
(沿海滩涂) because 三调 has no sea classes.

## Planted conflicts

Rules as measured here (DOMAIN.md section 4). "Construction" means a planned class whose every crosswalk
target is in 07-16: overall YDYHFLDM 07-16, urban R/A/B/M/W/S/U/G/H codes, land-use zones 030/040/050/060.
Network corridors are the line buffered by half the spec's `widths_m` on each side (total width centred);
coordinated lines were cut out of farmland and the red line with a margin of the full width, so either
reading of the width finds only the planted crossings. Urban `E2` (农林用地) over farmland is *not* counted
as farmland_use: its crosswalk is ambiguous. Areas are planar in EPSG:4546 (within 0.01 % of ellipsoidal
here); one row per pair of features, an instance may give several rows and some instances trigger a second
rule on purpose (e.g. construction on the red line also lies in a 禁止建设区). Sea uses (18-22) are not
construction here: C26 (增养殖用海) and C27 (风景旅游用海) also lie in the red line at sea, so a checker that counts
sea use as "development" will report them as red-line conflicts too. A few network rows are grazes
smaller than the 400 m² minimum mapping unit; they are real overlaps in the data and marked in the note, so a
checker with that tolerance will suppress them. The slope rule: area of a construction feature where the DEM
slope (3x3 central differences on the {DEM_CELL:g} m grid) exceeds {SLOPE_LIMIT:g}°.

| rule | meaning | instances | ids |
|---|---|---|---|
{types}

| id | conflict_type | layer_a feature_a | layer_b feature_b | m² | note |
|---|---|---|---|---|---|
{table}

## Approval records (`approvals.csv`)

| 项目代码 | 项目名称 | 审批阶段 | 状态 | 备注 |
|---|---|---|---|---|
{appr}
"""
    (out / "README.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
