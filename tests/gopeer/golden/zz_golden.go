// Golden vectors and a decoding judge made by the real memberlist code.
//
// This file is compiled *inside* package memberlist (copied next to a private copy of the
// Debian sources by tests/helpers/gopeer.py) so it can call the unexported encode,
// makeCompoundMessage, compressPayload and decryptPayload. It is not part of l2agent.

package memberlist

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net"
	"os"
	"strings"
)

func goldenMust(b *bytes.Buffer, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b.Bytes()
}

func goldenCrc(payload []byte) []byte {
	out := []byte{byte(hasCrcMsg), 0, 0, 0, 0}
	c := crc32.ChecksumIEEE(payload)
	out[1], out[2], out[3], out[4] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	return append(out, payload...)
}

// GoldenVectors returns name -> hex of bytes produced by memberlist itself.
func GoldenVectors() map[string]string {
	v := map[string]string{}
	put := func(name string, b []byte) { v[name] = hex.EncodeToString(b) }
	lo := net.ParseIP("127.0.0.1").To4()
	vsn := []uint8{1, 5, 2, 0, 0, 0}
	longName := strings.Repeat("n", 36)

	p := goldenMust(encode(pingMsg, &ping{SeqNo: 1, Node: "a"}))
	put("ping", p)
	put("ping_source", goldenMust(encode(pingMsg, &ping{SeqNo: 1, Node: "a", SourceAddr: lo, SourcePort: 7946, SourceNode: "b"})))
	put("ping_long_name", goldenMust(encode(pingMsg, &ping{SeqNo: 4294967295, Node: longName})))
	put("indirect", goldenMust(encode(indirectPingMsg, &indirectPingReq{SeqNo: 7, Target: net.ParseIP("10.0.0.3").To4(), Port: 7946, Node: "c", Nack: true, SourceAddr: net.ParseIP("10.0.0.1").To4(), SourcePort: 7946, SourceNode: "a"})))
	put("ack_nil", goldenMust(encode(ackRespMsg, &ackResp{SeqNo: 1})))
	put("ack_empty_300", goldenMust(encode(ackRespMsg, &ackResp{SeqNo: 300, Payload: []byte{}})))
	put("ack_payload", goldenMust(encode(ackRespMsg, &ackResp{SeqNo: 70000, Payload: []byte("pong")})))
	put("nack", goldenMust(encode(nackRespMsg, &nackResp{SeqNo: 7})))
	put("err", goldenMust(encode(errMsg, &errResp{Error: "boom"})))
	s := goldenMust(encode(suspectMsg, &suspect{Incarnation: 2, Node: "a", From: "b"}))
	put("suspect", s)
	put("dead_leave", goldenMust(encode(deadMsg, &dead{Incarnation: 2, Node: "a", From: "a"})))
	put("alive", goldenMust(encode(aliveMsg, &alive{Incarnation: 1, Node: "a", Addr: lo, Port: 7946, Meta: []byte("hi"), Vsn: vsn})))
	put("alive_nil_meta", goldenMust(encode(aliveMsg, &alive{Incarnation: 65536, Node: "node-1", Addr: lo, Port: 80, Vsn: vsn})))
	put("alive_v4_mapped", goldenMust(encode(aliveMsg, &alive{Incarnation: 1, Node: "a", Addr: net.ParseIP("127.0.0.1"), Port: 7946, Vsn: vsn})))
	put("alive_meta_512", goldenMust(encode(aliveMsg, &alive{Incarnation: 3, Node: longName, Addr: net.ParseIP("2001:db8::1"), Port: 7946, Meta: bytes.Repeat([]byte{0xfe}, 512), Vsn: vsn})))
	put("push_pull_header_200", goldenMust(encode(pushPullMsg, &pushPullHeader{Nodes: 200, UserStateLen: 0, Join: true})))
	put("push_pull_header_70000", goldenMust(encode(pushPullMsg, &pushPullHeader{Nodes: 3, UserStateLen: 70000, Join: false})))
	put("push_node_state", goldenMust(encode(pushPullMsg, &pushNodeState{Name: "a", Addr: lo, Port: 7946, Incarnation: 1, State: StateAlive, Vsn: vsn}))[1:])
	put("push_node_state_left", goldenMust(encode(pushPullMsg, &pushNodeState{Name: "b", Addr: lo, Port: 7947, Meta: []byte("m"), Incarnation: 9, State: StateLeft, Vsn: vsn}))[1:])
	put("user_msg_header", goldenMust(encode(userMsg, &userMsgHeader{UserMsgLen: 5})))
	compound := makeCompoundMessage([][]byte{p, s}).Bytes()
	put("compound", compound)
	put("compound_crc", goldenCrc(compound))
	put("ping_crc", goldenCrc(p))
	put("compress_ping", goldenMust(compressPayload(p)))
	// A long, repetitive-but-varied input so the LZW width climbs to 12 bits and the
	// writer emits a mid-stream clear code.
	var big bytes.Buffer
	for i := 0; i < 1500; i++ {
		fmt.Fprintf(&big, "node-%d:%d;", i%977, (i*7919)%1013)
	}
	put("lzw_big_plain", big.Bytes())
	put("compress_big", goldenMust(compressPayload(big.Bytes())))
	put("compress_compound", goldenMust(compressPayload(compound)))
	// Encryption uses a random nonce inside memberlist, so these differ on every run:
	// the tests decrypt them rather than compare them.
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	for name, vsn := range map[string]encryptionVersion{"encrypted_v1": 1, "encrypted_v0": 0} {
		var env bytes.Buffer
		if err := encryptPayload(vsn, key, compound, []byte("lab"), &env); err != nil {
			panic(err)
		}
		put(name, env.Bytes())
	}
	return v
}

// GoldenJudge reads "kind hex" lines and answers each with one JSON line; it lets a test
// ask the real memberlist code to decode bytes that Python produced.
func GoldenJudge() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		if len(fields) < 2 {
			continue
		}
		res := map[string]interface{}{"kind": fields[0]}
		raw, err := hex.DecodeString(fields[1])
		if err != nil {
			res["error"] = err.Error()
			out.Encode(res)
			continue
		}
		switch fields[0] {
		case "decompress": // raw = 0x09 + compress map
			plain, err := decompressPayload(raw[1:])
			if err != nil {
				res["error"] = err.Error()
			} else {
				res["hex"] = hex.EncodeToString(plain)
			}
		case "decrypt": // decrypt KEYHEX ADHEX ENVELOPEHEX
			key, _ := hex.DecodeString(fields[1])
			ad, _ := hex.DecodeString(fields[2])
			env, _ := hex.DecodeString(fields[3])
			plain, err := decryptPayload([][]byte{key}, env, ad)
			if err != nil {
				res["error"] = err.Error()
			} else {
				res["hex"] = hex.EncodeToString(plain)
			}
		case "compound":
			trunc, parts, err := decodeCompoundMessage(raw[1:])
			if err != nil {
				res["error"] = err.Error()
			} else {
				hs := []string{}
				for _, part := range parts {
					hs = append(hs, hex.EncodeToString(part))
				}
				res["parts"] = hs
				res["truncated"] = trunc
			}
		default: // a message: decode its body into the struct named by its type byte
			var target interface{}
			switch messageType(raw[0]) {
			case pingMsg:
				target = &ping{}
			case indirectPingMsg:
				target = &indirectPingReq{}
			case ackRespMsg:
				target = &ackResp{}
			case nackRespMsg:
				target = &nackResp{}
			case suspectMsg:
				target = &suspect{}
			case aliveMsg:
				target = &alive{}
			case deadMsg:
				target = &dead{}
			case errMsg:
				target = &errResp{}
			case pushPullMsg:
				target = &pushPullHeader{}
			case userMsg:
				target = &userMsgHeader{}
			}
			if fields[0] == "state" {
				target = &pushNodeState{}
				raw = append([]byte{0}, raw...)
			}
			if target == nil {
				res["error"] = "unknown type"
			} else if err := decode(raw[1:], target); err != nil {
				res["error"] = err.Error()
			} else {
				res["value"] = target
			}
		}
		out.Encode(res)
	}
}
