import subprocess

from alexnet_lib.provenance import git_commit


def test_a_results_file_written_by_the_run_is_not_a_code_change(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "alexnet_lib").mkdir()
    (tmp_path / "results" / "run.json").write_text("{}\n")
    (tmp_path / "alexnet_lib" / "train.py").write_text("lr = 0.01\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "start")
    head = git_commit(tmp_path / "alexnet_lib")
    assert len(head) == 40
    (tmp_path / "results" / "run.json").write_text('{"epochs": 1}\n')
    assert git_commit(tmp_path / "alexnet_lib") == head
    (tmp_path / "alexnet_lib" / "train.py").write_text("lr = 0.001\n")
    assert git_commit(tmp_path / "alexnet_lib") == head + "+dirty"
