// A real hashicorp/memberlist member, driven by the interop tests (tests/gossip/test_interop_go.py).
//
// It prints one JSON object per line on stdout: {"event": "ready"|"join"|"update"|"leave"|
// "user"|"state"|"members"|"error", ...} and reads commands on stdin, one per line:
//
//	members                 print {"event":"members","members":[...]}
//	join HOST:PORT          push/pull join (also forces a state exchange)
//	send NAME HEXDATA       reliable (TCP) user message to NAME
//	sendudp NAME HEXDATA    best-effort (UDP) user message to NAME
//	meta HEXDATA            change our metadata and gossip it (UpdateNode)
//	leave                   graceful Leave, Shutdown, exit 0
//
// Flags choose the config (see main below); -metallb-secret derives the key exactly as MetalLB's
// speaker does, and -label needs a build with -tags memberlist_label (memberlist >= 0.3.0).
//
// Built by tests/helpers/gopeer.py in GOPATH mode against Debian's memberlist sources: bookworm's
// 0.2.2, or trixie's 0.5.0 (the release MetalLB pins) with the label tag.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io/ioutil"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

var (
	outMu sync.Mutex
	out   = json.NewEncoder(os.Stdout)
)

func emit(v map[string]interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	out.Encode(v)
}

func nodeJSON(event string, n *memberlist.Node) map[string]interface{} {
	return map[string]interface{}{
		"event": event, "node": n.Name, "addr": n.Addr.String(), "port": n.Port,
		"meta": hex.EncodeToString(n.Meta), "state": int(n.State),
		"vsn": []uint8{n.PMin, n.PMax, n.PCur, n.DMin, n.DMax, n.DCur},
	}
}

type events struct{}

func (events) NotifyJoin(n *memberlist.Node)   { emit(nodeJSON("join", n)) }
func (events) NotifyLeave(n *memberlist.Node)  { emit(nodeJSON("leave", n)) }
func (events) NotifyUpdate(n *memberlist.Node) { emit(nodeJSON("update", n)) }

type delegate struct {
	mu    sync.Mutex
	meta  []byte
	state []byte
}

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meta
}
func (d *delegate) NotifyMsg(b []byte) {
	emit(map[string]interface{}{"event": "user", "data": hex.EncodeToString(b)})
}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return d.state }
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	emit(map[string]interface{}{"event": "state", "data": hex.EncodeToString(buf), "join": join})
}

func main() {
	name := flag.String("name", "", "node name")
	bind := flag.String("bind", "127.0.0.1", "bind address")
	port := flag.Int("port", 7946, "bind and advertise port")
	join := flag.String("join", "", "comma-separated HOST:PORT to join")
	key := flag.String("key", "", "hex AES key (16/24/32 bytes)")
	metallbSecret := flag.String("metallb-secret", "", "MetalLB's memberlist secret; key derived as MetalLB does")
	label := flag.String("label", "", "cluster label (memberlist >= 0.3.0)")
	skipLabelCheck := flag.Bool("skip-inbound-label-check", false, "SkipInboundLabelCheck")
	meta := flag.String("meta", "", "hex node metadata")
	state := flag.String("state", "", "hex push/pull user state")
	preset := flag.String("preset", "local", "lan|wan|local")
	probe := flag.Duration("probe-interval", 0, "override ProbeInterval")
	probeTimeout := flag.Duration("probe-timeout", 0, "override ProbeTimeout")
	gossip := flag.Duration("gossip-interval", 0, "override GossipInterval")
	pushPull := flag.Duration("push-pull-interval", 0, "override PushPullInterval")
	suspicionMult := flag.Int("suspicion-mult", 0, "override SuspicionMult")
	deadTime := flag.Duration("gossip-to-the-dead", 0, "override GossipToTheDeadTime")
	flag.Parse()

	var cfg *memberlist.Config
	switch *preset {
	case "lan":
		cfg = memberlist.DefaultLANConfig()
	case "wan":
		cfg = memberlist.DefaultWANConfig()
	default:
		cfg = memberlist.DefaultLocalConfig()
	}
	cfg.Name = *name
	cfg.BindAddr = *bind
	cfg.BindPort = *port
	cfg.AdvertisePort = *port
	cfg.LogOutput = ioutil.Discard
	if *probe > 0 {
		cfg.ProbeInterval = *probe
	}
	if *probeTimeout > 0 {
		cfg.ProbeTimeout = *probeTimeout
	}
	if *gossip > 0 {
		cfg.GossipInterval = *gossip
	}
	if *pushPull > 0 {
		cfg.PushPullInterval = *pushPull
	}
	if *suspicionMult > 0 {
		cfg.SuspicionMult = *suspicionMult
	}
	if *deadTime > 0 {
		cfg.GossipToTheDeadTime = *deadTime
	}
	if *key != "" {
		k, err := hex.DecodeString(*key)
		if err != nil {
			panic(err)
		}
		cfg.SecretKey = k
	}
	if *metallbSecret != "" {
		// MetalLB's speakerlist.New: Sum appends the digest of nothing to the secret.
		sha := sha256.New()
		cfg.SecretKey = sha.Sum([]byte(*metallbSecret))[:32]
	}
	if *label != "" || *skipLabelCheck {
		if !labelsSupported {
			emit(map[string]interface{}{"event": "error", "error": "this memberlist has no labels"})
			os.Exit(2)
		}
		setLabel(cfg, *label, *skipLabelCheck)
	}
	d := &delegate{}
	d.meta, _ = hex.DecodeString(*meta)
	d.state, _ = hex.DecodeString(*state)
	cfg.Delegate = d
	cfg.Events = events{}

	ml, err := memberlist.Create(cfg)
	if err != nil {
		emit(map[string]interface{}{"event": "error", "error": err.Error()})
		os.Exit(2)
	}
	emit(map[string]interface{}{"event": "ready", "node": *name, "port": *port, "labels": labelsSupported})
	if *join != "" {
		n, err := ml.Join(strings.Split(*join, ","))
		res := map[string]interface{}{"event": "joined", "count": n}
		if err != nil {
			res["error"] = err.Error()
		}
		emit(res)
	}

	find := func(name string) *memberlist.Node {
		for _, n := range ml.Members() {
			if n.Name == name {
				return n
			}
		}
		return nil
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<16), 1<<24)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		reply := map[string]interface{}{"event": "done", "cmd": f[0]}
		switch f[0] {
		case "members":
			list := []map[string]interface{}{}
			for _, n := range ml.Members() {
				list = append(list, nodeJSON("member", n))
			}
			reply = map[string]interface{}{"event": "members", "members": list}
		case "join":
			n, err := ml.Join(f[1:])
			reply["count"] = n
			if err != nil {
				reply["error"] = err.Error()
			}
		case "send", "sendudp":
			data, _ := hex.DecodeString(f[2])
			n := find(f[1])
			if n == nil {
				reply["error"] = "no such member"
			} else if f[0] == "send" {
				if err := ml.SendReliable(n, data); err != nil {
					reply["error"] = err.Error()
				}
			} else if err := ml.SendBestEffort(n, data); err != nil {
				reply["error"] = err.Error()
			}
		case "meta":
			m, _ := hex.DecodeString(f[1])
			d.mu.Lock()
			d.meta = m
			d.mu.Unlock()
			if err := ml.UpdateNode(5 * time.Second); err != nil {
				reply["error"] = err.Error()
			}
		case "leave":
			err := ml.Leave(5 * time.Second)
			ml.Shutdown()
			if err != nil {
				reply["error"] = err.Error()
			}
			emit(reply)
			os.Exit(0)
		default:
			reply["error"] = "unknown command"
		}
		emit(reply)
	}
	// stdin closed: behave like a crash (no Leave)
	ml.Shutdown()
}
